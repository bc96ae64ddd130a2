"""areacam.metrics on hand-built models and maps: exact values, shapes, bad input, model state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
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
    generator = torch.Generator().manual_seed(0)
    model = Linear(torch.rand(2, 1, 6, 6, generator=generator) + 0.1).eval()
    x = torch.rand(3, 1, 6, 6, generator=generator) + 0.1
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
    kept = torch.cat([torch.zeros(3, 2, 1), ordered.cumsum(2)], dim=2)  # sum of the top-n contributions
    removed = torch.round(torch.arange(steps + 1) * 36 / steps).long()
    total = contributions.flatten(2).sum(2, keepdim=True)
    torch.testing.assert_close(deleted.scores, total - kept[..., removed], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(deleted.curves, 1 - kept[..., removed] / total, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inserted.scores, kept[..., removed], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inserted.curves, kept[..., removed] / total, rtol=1e-5, atol=1e-5)
    expected_auc = torch.trapezoid(kept[..., removed] / total, dx=1 / steps, dim=2)
    torch.testing.assert_close(inserted.auc, expected_auc)
    assert not deleted.flat.any()
    # The true ranking is the best possible one: it beats the random ranking on every curve.
    assert (deleted.auc < deleted.random_auc).all() and (inserted.auc > inserted.random_auc).all()
    # Random ranking curves share the endpoints and are shared between targets (one per sample).
    torch.testing.assert_close(deleted.random_curves[..., [0, -1]], deleted.curves[..., [0, -1]])


def test_deletion_is_the_same_one_target_at_a_time(linear):
    model, x, contributions = linear
    targets = [ac.Class(0), ac.Class(1)]
    both = metrics.deletion(model, x, targets, contributions, steps=6, baseline="mean", batch_size=5)
    for k, target in enumerate(targets):
        alone = metrics.deletion(model, x, target, contributions[:, k : k + 1], steps=6, baseline="mean")
        torch.testing.assert_close(alone.scores[:, 0], both.scores[:, k])


def test_deletion_accepts_an_explainer_and_an_explanation(linear):
    model, x, _ = linear
    explainer = ac.Saliency(model)
    expl = explainer(x, ac.Class(0))
    from_explainer = metrics.deletion(model, x, ac.Class(0), explainer, steps=5)
    from_explanation = metrics.deletion(model, x, ac.Class(0), expl, steps=5)
    torch.testing.assert_close(from_explainer.curves, from_explanation.curves)


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
        assert metrics.sparseness(maps).abs().max() < 1e-6
        torch.testing.assert_close(metrics.entropy(maps), torch.full((1, 2), float(np.log(64))))
        assert metrics.spearman(maps, torch.rand(1, 2, 8, 8)).eq(0).all()
    model, x, _ = linear
    flat = metrics.deletion(model, x, ac.Score(lambda out: out[:, 0] * 0), torch.rand(3, 1, 6, 6), steps=3)
    assert flat.flat.all() and flat.curves.eq(0).all() and torch.isfinite(flat.auc).all()


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
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1)).eval()
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        out = model(x)
        fill = torch.zeros_like(x)
        predicted = out.argmax(1, keepdim=True) == 1
        expected_empty = (model(fill)[:, 1:2] * predicted).sum()
    curves = metrics.deletion(model, x, ac.Segment(1), torch.rand(1, 1, 10, 10), steps=2, baseline="zero")
    assert curves.scores[0, 0, -1].item() == pytest.approx(expected_empty.item(), rel=1e-5)
    assert curves.scores[0, 0, 0].item() == pytest.approx((out[:, 1:2] * predicted).sum().item(), rel=1e-5)


def test_curves_plot_is_a_figure_with_one_panel_per_target(linear, tmp_path):
    from matplotlib.figure import Figure

    model, x, contributions = linear
    curves = metrics.deletion(model, x, [ac.Class(0), ac.Class(1)], contributions, steps=4)
    fig = curves.plot(path=tmp_path / "deletion.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert (tmp_path / "deletion.png").stat().st_size > 0
    summary = curves.summary()
    assert summary["auc"] == pytest.approx(curves.auc.mean().item(), rel=1e-5)
    evaluation = metrics.evaluate(model, x, [ac.Class(0), ac.Class(1)], contributions, steps=4)
    assert len(evaluation.plot().axes) == 4  # deletion and insertion rows, one column per target
    assert set(evaluation.means()) == {
        "deletion_auc", "deletion_random_auc", "insertion_auc", "insertion_random_auc", "sparseness", "entropy"
    }
    torch.testing.assert_close(evaluation.values["deletion_auc"], curves.auc)


def test_curves_of_autoencoder_targets_start_and_end_at_the_direct_scores(autoencoder, images):
    """Structured outputs: a reconstruction error and a latent unit, scored on the model's tuple output."""
    from areacam.metrics.baselines import blur

    targets = [ac.ReconstructionError(box=(8, 8, 40, 40)), ac.Latent(1)]
    maps = torch.rand(2, 2, 64, 64, generator=torch.Generator().manual_seed(0))
    curves = metrics.deletion(autoencoder, images, targets, maps, steps=5)
    assert curves.scores.shape == (2, 2, 6) and torch.isfinite(curves.curves).all()
    with torch.no_grad():
        blurred = blur(images)
        for k, target in enumerate(targets):
            torch.testing.assert_close(curves.scores[:, k, 0], target(autoencoder(images), images))
            torch.testing.assert_close(curves.scores[:, k, -1], target(autoencoder(blurred), blurred))


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
        torch.testing.assert_close(alone.scores[:, 0], curves.scores[:, k])
