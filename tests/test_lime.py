"""Lime: parity with the ``lime`` package, region targets of dense outputs, state and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _numerics import U32, assert_close, assert_identical, maps_allowed, rounded
from lime.lime_image import LimeImageExplainer
from lime.wrappers.scikit_image import SegmentationAlgorithm
from sklearn.linear_model import LinearRegression
from torch import nn

from areacam.methods.lime import Lime, segment_image
from areacam.targets import Area, Class, Segment

QUICK = {"kernel_size": 2, "max_dist": 20, "ratio": 0.5}


def blocks(batch: int = 2, channels: int = 3, seed: int = 1) -> torch.Tensor:
    """(B, C, 32, 32) images of 4x4 colour blocks with a little noise: clear superpixels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, channels, 4, 4, generator=g).repeat_interleave(8, 2).repeat_interleave(8, 3)
    return (x + 0.02 * torch.rand(batch, channels, 32, 32, generator=g)).clamp(0, 1)


def grid(image: np.ndarray) -> np.ndarray:
    """4x4 grid of 8x8 superpixels, labels row-major."""
    rows, cols = np.indices(image.shape[:2]) // 8
    return rows * 4 + cols


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x**2


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def classifier() -> nn.Module:
    """float64, so that areacam's and lime's scores of a perturbation agree to float64 rounding whatever
    the batches they are computed in: the ridge fit (float64 on both sides) then differs by float64
    rounding times its condition number (below 1e4 with ``alpha=1``), far below areacam's one float32
    rounding of the weights."""
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, 4)]
    return nn.Sequential(*layers).eval().double()


@pytest.mark.parametrize(
    ("segmentation", "params", "hide", "lime_hide"),
    [("quickshift", QUICK, "mean", None), ("slic", {"n_segments": 16}, 0.0, 0)],
)
def test_weights_equal_lime_package(classifier, segmentation, params, hide, lime_hide):
    x = blocks().double()

    def classifier_fn(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return classifier(torch.from_numpy(images).permute(0, 3, 1, 2).double().contiguous()).numpy()

    reference = LimeImageExplainer(random_state=3)  # one explainer, images in turn: one random stream
    seg_fn = SegmentationAlgorithm(segmentation, **{**({"start_label": 0} if segmentation == "slic" else {}), **params})
    expected = [
        reference.explain_instance(
            x[b].permute(1, 2, 0).numpy(),
            classifier_fn,
            labels=(1, 2),
            top_labels=None,
            hide_color=lime_hide,
            num_samples=200,
            segmentation_fn=seg_fn,
        )
        for b in range(2)
    ]
    expl = Lime(
        classifier,
        num_samples=200,
        random_state=3,
        segmentation=segmentation,
        segmentation_params=params,
        hide=hide,
        progress=False,
    )(x, [Class(1), Class(2)])
    for b, exp in enumerate(expected):
        np.testing.assert_array_equal(expl.segments[b].numpy(), exp.segments)
        count = len(np.unique(exp.segments))
        assert count > 4
        for k, label in enumerate((1, 2)):
            ref = dict(exp.local_exp[label])
            ref = torch.tensor([ref[i] for i in range(count)])[None]
            assert_close(expl.raw[b, k, :count][None], ref, rounded(ref, leading=1), f"weights of sample {b}")
            assert (expl.raw[b, k, count:] == 0).all()
    assert_identical(expl.scores, classifier(x)[:, 1:3].detach().float())


def test_box_targets_of_a_pointwise_model_find_their_box():
    x = blocks(batch=1, seed=4).double() + 0.5  # energies clearly above zero everywhere
    boxes = [(0, 0, 16, 16), (16, 8, 32, 24)]
    inside = [{0, 1, 4, 5}, {9, 10, 13, 14}]
    targets = [Area(box=box) for box in boxes]
    exact = Lime(
        Square(),
        num_samples=150,
        random_state=0,
        segmentation=grid,
        hide=0.0,
        regressor=LinearRegression(),
        progress=False,
    )(x, targets)
    ridge = Lime(Square(), num_samples=150, random_state=0, segmentation=grid, hide=0.0, progress=False)(x, targets)
    labels = torch.from_numpy(grid(np.zeros((32, 32, 3))))
    assert torch.equal(exact.segments[0], labels)
    for k, (box, cells) in enumerate(zip(boxes, inside)):
        region = torch.zeros(32, 32, dtype=torch.bool)
        region[box[0] : box[2], box[1] : box[3]] = True
        energy = torch.stack([(x[0] ** 2).sum(0)[(labels == s) & region].sum() for s in range(16)])[None]
        # the score is exactly linear in the masks: plain least squares (float64) recovers each segment's
        # energy up to float64 rounding times the fit's condition number, then one float32 rounding
        assert_close(exact.raw[0, k][None], energy, rounded(energy, leading=1), f"energies in box {box}")
        weights = ridge.raw[0, k]
        assert set(weights.topk(4).indices.tolist()) == cells
        outside = [s for s in range(16) if s not in cells]
        assert weights[outside].abs().max() < 0.1 * weights[sorted(cells)].min()  # ridge shrinkage leaks a little
        assert ridge.maps[0, k][region].min() > ridge.maps[0, k][~region].max()
    assert_identical(exact.scores[0], torch.stack([Area(box=b)(x**2, x)[0] for b in boxes]).float())


def test_reproducible_with_a_seed(classifier):
    x = blocks().double()

    def make(seed: int) -> Lime:
        return Lime(
            classifier, num_samples=64, batch_size=16, random_state=seed, segmentation_params=QUICK, progress=False
        )

    first, again, other = make(5)(x, Class(0)), make(5)(x, Class(0)), make(6)(x, Class(0))
    assert torch.equal(first.raw, again.raw) and torch.equal(first.maps, again.maps)
    assert not torch.equal(first.raw, other.raw)
    # batch size changes only how perturbations are grouped, not what is computed (float64 scores of
    # other batch compositions: the float32 weights agree to their rounding)
    grouped = Lime(classifier, num_samples=64, batch_size=7, random_state=5, segmentation_params=QUICK, progress=False)(
        x, Class(0)
    )
    assert_close(grouped.raw, first.raw, rounded(first.raw), "weights")


def test_maps_spread_segment_weights_and_per_sample_targets(classifier):
    x = blocks().double()
    lime = Lime(classifier, num_samples=64, random_state=1, segmentation_params=QUICK, progress=False)
    expl = lime(x, Class())
    top = classifier(x).argmax(1).tolist()
    assert_identical(lime(x, Class(top)).raw, expl.raw)
    for b in range(2):
        pixels = expl.raw[b, 0][expl.segments[b]].double()  # the float32 weights: one rounding off the fit's
        expected = ((pixels - pixels.min()) / (pixels.max() - pixels.min()))[None, None]
        allowed = maps_allowed(pixels[None, None], raw_error=U32)
        assert_close(expl.maps[b : b + 1, :1], expected, allowed, f"map of sample {b}")
    assert expl.maps.shape == (2, 1, 32, 32) and expl.degenerate.tolist() == [[False], [False]]


def test_segment_target_and_grayscale_input():
    seen = []

    class Seg(nn.Module):  # (B, 1, H, W) grey input -> (B, 2, H, W) logits
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.shape[1])
            return torch.cat([0.5 - x, x - 0.5], dim=1)

    x = blocks(batch=1, channels=1)
    expl = Lime(Seg(), num_samples=40, random_state=0, segmentation=grid, hide=0.0, progress=False)(
        x, [Segment(1), Segment(1, box=(0, 0, 1, 1)) if x[0, 0, 0, 0] <= 0.5 else Segment(0, box=(0, 0, 1, 1))]
    )
    assert set(seen) == {1}
    assert expl.segments.shape == (1, 32, 32) and expl.raw.shape == (1, 2, 16)
    bright = [s for s in range(16) if x[0, 0][expl.segments[0] == s].mean() > 0.5]
    assert bright and set(expl.raw[0, 0].topk(len(bright)).indices.tolist()) == set(bright)
    assert expl.degenerate[0].tolist() == [False, True]  # no predicted pixel in that box: zero weights
    assert (expl.raw[0, 1] == 0).all()


def test_state_is_left_as_found():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    model.train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    Lime(model, num_samples=20, random_state=0, segmentation=grid, progress=False)(blocks(), Class(1))
    assert [m.training for m in model.modules()] == [True, True, False, True, True, True, True, True]
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True, True, True]
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(buffers[k], v) for k, v in model.state_dict().items())


def test_bad_arguments_name_the_value(classifier):
    with pytest.raises(ValueError, match="num_samples must be >= 1, got 0"):
        Lime(classifier, num_samples=0)
    with pytest.raises(ValueError, match="'watershed'"):
        Lime(classifier, segmentation="watershed")
    with pytest.raises(ValueError, match="'noise'"):
        Lime(classifier, hide="noise")
    with pytest.raises(ValueError, match="n_segmets"):
        Lime(classifier, segmentation="slic", segmentation_params={"n_segmets": 3})
    with pytest.raises(ValueError, match="2 values for 3 channels"):
        Lime(classifier, hide=(0.0, 1.0), segmentation=grid)(blocks().double(), Class(0))
    with pytest.raises(TypeError, match="num_samples must be an int"):
        Lime(classifier, num_samples=10.5)


def test_segment_image_relabels_to_contiguous_labels():
    labels = segment_image(np.zeros((4, 4, 3)), lambda img: np.array([[5, 5, 9, 9]] * 4))
    assert labels.tolist() == [[0, 0, 1, 1]] * 4
