"""areacam.metrics on hand-built models and maps: exact values, shapes, bad input, model state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _numerics import FLOAT64, U32, assert_close, assert_identical, rounded
from torch import nn

import areacam as ac
from areacam import metrics


class Linear(nn.Module):
    """``out[:, j] = sum(W[j] * x)``: the contribution of pixel p to output j is ``W[j, :, p] * x[:, p]``."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.weights = nn.Parameter(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bchw,jchw->bj", x, self.weights)


@pytest.fixture
def linear() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """float64: the metrics then compute in float64 and round once (tests/README.md, rule 2)."""
    generator = torch.Generator().manual_seed(0)
    model = Linear(torch.rand(2, 1, 6, 6, generator=generator, dtype=torch.float64) + 0.1).eval()
    x = torch.rand(3, 1, 6, 6, generator=generator, dtype=torch.float64) + 0.1
    contributions = torch.einsum("bchw,jchw->bjhw", x, model.weights.detach())  # (B, K, H, W), all > 0
    return model, x, contributions


def _snapshot(model: nn.Module) -> dict:
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "buffers": [b.clone() for b in model.buffers()],
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "hooks": sum(
            len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
        ),
    }


def _same(before: dict, after: dict) -> bool:
    return (
        all(torch.equal(a, b) for a, b in zip(before["params"], after["params"]))
        and all(torch.equal(a, b) for a, b in zip(before["buffers"], after["buffers"]))
        and before["training"] == after["training"]
        and before["requires_grad"] == after["requires_grad"]
        and all(g is None for g in after["grads"])
        and before["hooks"] == after["hooks"]
    )


@pytest.mark.parametrize("steps", [4, 36])
def test_deletion_and_insertion_of_a_linear_model_follow_the_closed_form(linear, steps):
    model, x, contributions = linear
    targets = [ac.Class(0), ac.Class(1)]
    maps = contributions / contributions.flatten(2).amax(2)[..., None, None]
    deleted = metrics.deletion(model, x, targets, maps, steps=steps, baseline="zero")
    inserted = metrics.insertion(model, x, targets, maps, steps=steps, baseline="zero")
    ordered = contributions.flatten(2).sort(dim=2, descending=True).values
    kept = torch.cat([torch.zeros(3, 2, 1, dtype=torch.float64), ordered.cumsum(2)], dim=2)  # top-n sums
    removed = torch.round(torch.arange(steps + 1) * 36 / steps).long()
    total = contributions.flatten(2).sum(2, keepdim=True)
    top = kept[..., removed]
    for got, expected in (
        (deleted.scores, total - top),
        (deleted.curves, 1 - top / total),
        (inserted.scores, top),
        (inserted.curves, top / total),
    ):
        assert_close(got, expected, rounded(expected), "curve")
    expected_auc = torch.trapezoid(kept[..., removed] / total, dx=1 / steps, dim=2)
    assert_close(inserted.auc, expected_auc, rounded(expected_auc, leading=2), "AUC")
    assert deleted.defined.all() and inserted.defined.all()
    # The true ranking is the best possible one: it beats the random ranking on every curve.
    assert (deleted.auc < deleted.random_auc).all() and (inserted.auc > inserted.random_auc).all()
    # Random ranking curves share the endpoints and are shared between targets (one per sample).
    assert_identical(deleted.random_curves[..., [0, -1]], deleted.curves[..., [0, -1]])


def test_deletion_is_the_same_one_target_at_a_time(linear):
    model, x, contributions = linear
    targets = [ac.Class(0), ac.Class(1)]
    both = metrics.deletion(model, x, targets, contributions, steps=6, baseline="mean", batch_size=5)
    for k, target in enumerate(targets):
        alone = metrics.deletion(model, x, target, contributions[:, k : k + 1], steps=6, baseline="mean")
        # other batches of the same perturbed inputs: float64 sums of another batch shape (rule 2)
        assert_close(alone.scores[:, 0], both.scores[:, k], rounded(both.scores[:, k], leading=1), "scores")


def test_deletion_accepts_an_explainer_and_an_explanation(linear):
    model, x, _ = linear
    explainer = ac.Saliency(model)
    expl = explainer(x, ac.Class(0))
    from_explainer = metrics.deletion(model, x, ac.Class(0), explainer, steps=5)
    from_explanation = metrics.deletion(model, x, ac.Class(0), expl, steps=5)
    assert_identical(from_explainer.curves, from_explanation.curves)


def test_a_map_equal_to_the_mask_scores_one():
    masks = torch.zeros(2, 10, 10, dtype=torch.bool)
    masks[0, 2:5, 3:8] = True
    masks[1, 6:9, 0:2] = True
    maps = masks.float()[:, None]
    for metric in (metrics.pointing_game, metrics.relevance_mass, metrics.relevance_rank, metrics.iou):
        assert metric(maps, masks).eq(1).all(), metric.__name__
    # Outside the mask: 0; one pixel away with a tolerance of 1: a hit again.
    shifted = torch.roll(maps, shifts=3, dims=2)
    assert metrics.pointing_game(shifted, masks).eq(0).all()
    assert metrics.relevance_mass(shifted, masks).eq(0).all()
    near = torch.zeros(1, 1, 10, 10)
    near[0, 0, 5, 5] = 1  # the mask of sample 0 ends at row 4
    assert metrics.pointing_game(near, masks[:1]).item() == 0
    assert metrics.pointing_game(near, masks[:1], tolerance=1).item() == 1


def test_constant_maps_are_flagged_and_never_nan(linear):
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, :2, :2] = True
    for value in (0.0, 0.7):
        maps = torch.full((1, 2, 8, 8), value)
        for metric in (metrics.pointing_game, metrics.relevance_mass, metrics.relevance_rank, metrics.iou):
            with pytest.warns(RuntimeWarning, match="constant"):
                assert metric(maps, masks).eq(0).all()
        assert metrics.sparseness(maps).abs().max() <= FLOAT64  # equal values: 0 up to float64 rounding
        entropy = torch.full((1, 2), float(np.log(64)), dtype=torch.float64)  # float64 sums, one rounding
        assert_close(metrics.entropy(maps), entropy, rounded(entropy, leading=2), "entropy")
        assert metrics.spearman(maps, torch.rand(1, 2, 8, 8)).eq(0).all()
    model, x, _ = linear
    flat = metrics.deletion(model, x, ac.Score(lambda out: out[:, 0] * 0), torch.rand(3, 1, 6, 6), steps=3)
    assert not flat.defined.any() and flat.curves.eq(0).all() and flat.auc.eq(0).all()
    assert flat.summary()["auc"] is None and flat.summary()["undefined"] == 3


def test_boxes_to_masks():
    masks = metrics.boxes_to_masks([(0, 0, 2, 3), (1, 1, 4, 4)], (5, 5))
    assert masks.shape == (2, 5, 5) and masks[0].sum() == 6 and masks[1].sum() == 9
    per_target = metrics.boxes_to_masks([[(0, 0, 1, 1), (2, 2, 5, 5)]], (5, 5))
    assert per_target.shape == (1, 2, 5, 5) and per_target[0, 1].sum() == 9
    with pytest.raises(ValueError, match="outside"):
        metrics.boxes_to_masks([(0, 0, 6, 2)], (5, 5))


def test_bad_input_gets_clear_errors(linear):
    model, x, contributions = linear
    maps = contributions[:, :1]
    masks = torch.ones(3, 6, 6, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"does not fit maps"):
        metrics.pointing_game(maps, masks[:, :5])
    with pytest.raises(ValueError, match=r"does not fit maps"):
        metrics.relevance_mass(maps, torch.ones(2, 6, 6, dtype=torch.bool))
    empty = masks.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="empty for sample 1"):
        metrics.relevance_rank(maps, empty)
    with pytest.raises(ValueError, match="only 0 and 1"):
        metrics.iou(maps, masks.long() * 2)
    nan = maps.clone()
    nan[2, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        metrics.sparseness(nan)
    with pytest.raises(ValueError, match="NaN"):
        metrics.deletion(model, x, ac.Class(0), nan)
    for bad in (0, 100, -5, 120.5):
        with pytest.raises(ValueError, match="outside"):
            metrics.road(model, x, ac.Class(0), maps, percentiles=(10, bad))
    with pytest.raises(ValueError, match="unknown baseline"):
        metrics.deletion(model, x, ac.Class(0), maps, baseline="gaussian")
    with pytest.raises(ValueError, match="targets"):
        metrics.deletion(model, x, [ac.Class(0), ac.Class(1)], maps)
    with pytest.raises(ValueError, match="do not fit x"):
        metrics.insertion(model, x, ac.Class(0), maps[:2])
    with pytest.raises(ValueError, match="steps"):
        metrics.deletion(model, x, ac.Class(0), maps, steps=0)
    with pytest.raises(ValueError, match="order"):
        metrics.road(model, x, ac.Class(0), maps, order="most-relevant")
    with pytest.raises(TypeError, match="maps"):
        metrics.relevance_mass([[1.0]], masks)


def test_metrics_leave_the_model_as_found():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Conv2d(4, 2, 1)
    )
    model.train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    x = torch.rand(2, 3, 12, 12)
    targets = [ac.Area(box=(0, 0, 6, 6)), ac.Segment(1)]
    maps = torch.rand(2, 2, 12, 12)
    before = _snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        metrics.deletion(model, x, targets, maps, steps=3)
        metrics.insertion(model, x, targets, maps, steps=3, baseline="noisy_linear")
        metrics.road(model, x, targets, maps, percentiles=(50,))
        metrics.evaluate(model, x, targets, maps, masks=maps > 0.5, steps=2)
        metrics.candidate_layers(model, x)
        metrics.rank_layers(model, x, targets, layers=["0", "2"], steps=2)
        metrics.randomisation(lambda m: ac.GradCAM(m, "2"), model, x, targets)
        metrics.randomisation(ac.GradCAM(model, "2"), model, x, targets, order="independent")
    assert _same(before, _snapshot(model))


def test_segment_targets_are_frozen_at_the_unperturbed_image():
    """Deleting everything must score the original predicted pixels, not the perturbed prediction's."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1)).eval().double()
    x = torch.rand(1, 3, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        out = model(x)
        fill = torch.zeros_like(x)
        predicted = out.argmax(1, keepdim=True) == 1
        expected_empty = (model(fill)[:, 1:2] * predicted).sum().view(1)
        expected_intact = (out[:, 1:2] * predicted).sum().view(1)
    curves = metrics.deletion(model, x, ac.Segment(1), torch.rand(1, 1, 10, 10), steps=2, baseline="zero")
    assert_close(curves.scores[0, :, -1], expected_empty, rounded(expected_empty, leading=1), "fully deleted")
    assert_close(curves.scores[0, :, 0], expected_intact, rounded(expected_intact, leading=1), "intact")


def test_curves_plot_is_a_figure_with_one_panel_per_target(linear, tmp_path):
    from matplotlib.figure import Figure

    model, x, contributions = linear
    curves = metrics.deletion(model, x, [ac.Class(0), ac.Class(1)], contributions, steps=4, baseline="zero")
    assert curves.defined.all()
    fig = curves.plot(path=tmp_path / "deletion.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert (tmp_path / "deletion.png").stat().st_size > 0
    summary = curves.summary()
    mean = curves.auc.double().mean().view(1)  # the mean of the float32 AUCs, from the float64 ones
    assert_close(torch.tensor([summary["auc"]]), mean, 4 * U32 * curves.auc.double().abs().mean(), "mean AUC")
    evaluation = metrics.evaluate(model, x, [ac.Class(0), ac.Class(1)], contributions, steps=4, baseline="zero")
    assert len(evaluation.plot().axes) == 4  # deletion and insertion rows, one column per target
    assert set(evaluation.means()) == {
        "deletion_auc",
        "deletion_random_auc",
        "insertion_auc",
        "insertion_random_auc",
        "sparseness",
        "entropy",
    }
    assert_identical(evaluation.values["deletion_auc"], curves.auc)


def test_curves_of_autoencoder_targets_start_and_end_at_the_direct_scores(autoencoder, images):
    """Structured outputs: a reconstruction error and a latent unit, scored on the model's tuple output."""
    from areacam.metrics.baselines import blur

    targets = [ac.ReconstructionError(box=(8, 8, 40, 40)), ac.Latent(1)]
    maps = torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(0))
    autoencoder, images = autoencoder.double(), images.double()
    curves = metrics.deletion(autoencoder, images, targets, maps, steps=5)
    assert curves.scores.shape == (2, 2, 6) and torch.isfinite(curves.curves).all()
    with torch.no_grad():
        blurred = blur(images)
        for k, target in enumerate(targets):  # float64 forward passes in other batches (rule 2)
            for step, x in ((0, images), (-1, blurred)):
                expected = target(autoencoder(x), x)
                assert_close(curves.scores[:, k, step], expected, rounded(expected, leading=1), f"{target!r}")


def test_targets_with_the_same_map_share_their_perturbed_inputs(linear):
    """One map for all targets (e.g. EigenCAM's): each perturbed input runs once for all of them."""
    model, x, contributions = linear
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        shared = contributions[:, :1].expand(3, 2, 6, 6)
        curves = metrics.deletion(model, x, [ac.Class(0), ac.Class(1)], shared, steps=6, random=False)
    finally:
        handle.remove()
    # The intact batch, the fully removed images, then 5 inner steps per image: not per target.
    assert sum(seen) == 3 + 3 + 3 * 5
    for k in range(2):
        alone = metrics.deletion(model, x, ac.Class(k), shared[:, :1], steps=6, random=False)
        assert_close(alone.scores[:, 0], curves.scores[:, k], rounded(curves.scores[:, k], leading=1), "scores")


class Balanced(nn.Module):
    """``score = sum(w * x)`` with ``w = +1`` on the left half of a 6x6 image and ``-1`` on the right."""

    def __init__(self):
        super().__init__()
        weights = torch.ones(1, 1, 6, 6, dtype=torch.float64)
        weights[..., 3:] = -1
        self.linear = Linear(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def test_a_curve_whose_ends_nearly_agree_is_undefined_everywhere_it_is_reported():
    """Intact and fully deleted scores 1e-4 apart while deleting the left half first swings the score to -9:
    normalising by the 1e-4 drop gave an "AUC" near -4e4. It is undefined instead, in the curves, their
    summary, evaluate() and rank_layers(), and shown as such; never a number outside [-1, 2]."""
    model = Balanced().eval()
    x = torch.full((1, 1, 6, 6), 0.5, dtype=torch.float64)
    x[0, 0, 0, 0] += 1e-4  # intact score 1e-4; the zero baseline scores 0
    maps = torch.zeros(1, 1, 6, 6)
    maps[..., :3] = 1.0  # rank the left half first
    curves = metrics.deletion(model, x, ac.Class(0), maps, steps=4, baseline="zero")
    scores = curves.scores[0, 0].double()
    assert abs(float(scores[0]) - 1e-4) < 1e-9 and float(scores[-1]) == 0 and float(scores.min()) < -8
    assert not curves.defined.any() and curves.auc.eq(0).all() and curves.curves.eq(0).all()
    summary = curves.summary()
    assert summary["auc"] is None and summary["auc_per_target"] == [None] and summary["undefined"] == 1
    evaluation = metrics.evaluate(
        model, x, ac.Class(0), maps, metrics=["deletion", "insertion"], steps=4, baseline="zero"
    )
    report = evaluation.to_dict()
    assert report["means"]["deletion_auc"] is None and report["per_sample"]["deletion_auc"] == [[None]]
    assert report["means"]["insertion_random_auc"] is None
    import json

    json.dumps(report)  # None, not NaN: valid JSON

    class Fixed:  # an "explainer" whose maps are the ones above, at any layer
        def __init__(self, model, layer):
            pass

        def __call__(self, x, targets):
            return ac.Explanation(maps=maps, raw=maps, scores=torch.zeros(1, 1), degenerate=torch.zeros(1, 1).bool())

    wrapped = nn.Sequential(model).eval()
    ranking = metrics.rank_layers(wrapped, x, ac.Class(0), method=Fixed, layers=["0"], steps=4, baseline="zero")
    assert not ranking.defined.any() and ranking.to_dict()["layers"][0]["deletion"] is None
    assert "| 1 | `0` | undefined |" in ranking.table()
    with pytest.raises(ValueError, match="no layer has a defined deletion score"):
        _ = ranking.best


def test_defined_auc_lies_in_its_documented_range():
    """Where a curve is defined, |intact - fully perturbed| >= MIN_DROP x the scores' range, so every
    normalised value and the AUC lie in [1 - 1/MIN_DROP, 1/MIN_DROP] = [-1, 2]: random models and maps."""
    low, high = 1 - 1 / metrics.result.MIN_DROP, 1 / metrics.result.MIN_DROP
    assert (low, high) == (-1.0, 2.0)
    for seed in range(8):
        generator = torch.Generator().manual_seed(seed)
        model = Linear(torch.randn(3, 1, 6, 6, generator=generator, dtype=torch.float64)).eval()
        x = torch.rand(4, 1, 6, 6, generator=generator, dtype=torch.float64)
        maps = torch.rand(4, 3, 6, 6, generator=generator)
        for curve in (metrics.deletion, metrics.insertion):
            result = curve(model, x, [ac.Class(k) for k in range(3)], maps, steps=6, baseline="zero", random_state=seed)
            for values in (result.curves, result.random_curves, result.auc[..., None], result.random_auc[..., None]):
                inside = values[result.defined]
                assert ((inside >= low) & (inside <= high)).all()


def test_rank_layers_leaves_out_default_candidates_the_target_does_not_reach():
    """A latent target depends on the encoder only: the decoder candidates are skipped, not a failure;
    a decoder layer named by the caller still raises."""
    from areacam.core.autograd import NoGradientError
    from areacam.models import create

    torch.manual_seed(0)
    vae = create("vae").eval()
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    gradcam = lambda model, name: ac.GradCAM(model, name, layout="nchw")  # noqa: E731
    ranking = metrics.rank_layers(vae, x, ac.Latent(0), steps=4, method=gradcam)
    candidates = metrics.candidate_layers(vae, x)
    assert sorted(ranking.layers) == sorted(n for n in candidates if n.startswith("encoder."))
    assert ranking.skipped == [n for n in candidates if n.startswith("decoder.")] and ranking.skipped
    assert ranking.to_dict()["skipped"] == ranking.skipped and "Not ranked" in ranking.table()
    with pytest.raises(NoGradientError, match="receives no gradient from Latent"):
        metrics.rank_layers(vae, x, ac.Latent(0), steps=4, method=gradcam, layers=["decoder.relu1"])
