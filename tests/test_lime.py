"""Lime: parity with the ``lime`` package, region targets of dense outputs, state and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lime.lime_image import LimeImageExplainer
from lime.wrappers.scikit_image import SegmentationAlgorithm
from sklearn.linear_model import LinearRegression
from torch import nn

from areacam.lime import Lime, segment_image
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
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 32 * 32, 4)).eval()


@pytest.mark.parametrize(
    ("segmentation", "params", "hide", "lime_hide"),
    [("quickshift", QUICK, "mean", None), ("slic", {"n_segments": 16}, 0.0, 0)],
)
def test_weights_equal_lime_package(classifier, segmentation, params, hide, lime_hide):
    x = blocks()

    def classifier_fn(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return classifier(torch.from_numpy(images).permute(0, 3, 1, 2).float().contiguous()).numpy()

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
            ref = np.array([ref[i] for i in range(count)])
            np.testing.assert_allclose(expl.raw[b, k, :count].numpy(), ref, rtol=1e-5, atol=1e-9)
            assert (expl.raw[b, k, count:] == 0).all()
    assert torch.allclose(expl.scores, classifier(x)[:, 1:3])


def test_box_targets_of_a_pointwise_model_find_their_box():
    x = blocks(batch=1, seed=4) + 0.5  # energies clearly above zero everywhere
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
        energy = torch.stack([(x[0] ** 2).sum(0)[(labels == s) & region].sum() for s in range(16)])
        # the score is exactly linear in the masks: plain least squares recovers each segment's energy
        torch.testing.assert_close(exact.raw[0, k], energy, rtol=1e-4, atol=1e-3)
        weights = ridge.raw[0, k]
        assert set(weights.topk(4).indices.tolist()) == cells
        outside = [s for s in range(16) if s not in cells]
        assert weights[outside].abs().max() < 0.1 * weights[sorted(cells)].min()  # ridge shrinkage leaks a little
        assert ridge.maps[0, k][region].min() > ridge.maps[0, k][~region].max()
    assert torch.allclose(exact.scores[0], torch.stack([Area(box=b)(x**2, x)[0] for b in boxes]))


def test_reproducible_with_a_seed(classifier):
    x = blocks()

    def make(seed: int) -> Lime:
        return Lime(
            classifier, num_samples=64, batch_size=16, random_state=seed, segmentation_params=QUICK, progress=False
        )

    first, again, other = make(5)(x, Class(0)), make(5)(x, Class(0)), make(6)(x, Class(0))
    assert torch.equal(first.raw, again.raw) and torch.equal(first.maps, again.maps)
    assert not torch.equal(first.raw, other.raw)
    # batch size changes only how perturbations are grouped, not what is computed
    torch.testing.assert_close(
        Lime(classifier, num_samples=64, batch_size=7, random_state=5, segmentation_params=QUICK, progress=False)(
            x, Class(0)
        ).raw,
        first.raw,
    )


def test_maps_spread_segment_weights_and_per_sample_targets(classifier):
    x = blocks()
    lime = Lime(classifier, num_samples=64, random_state=1, segmentation_params=QUICK, progress=False)
    expl = lime(x, Class())
    top = classifier(x).argmax(1).tolist()
    torch.testing.assert_close(lime(x, Class(top)).raw, expl.raw)
    for b in range(2):
        pixels = expl.raw[b, 0][expl.segments[b]]
        expected = (pixels - pixels.min()) / (pixels.max() - pixels.min())
        torch.testing.assert_close(expl.maps[b, 0], expected)
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
        Lime(classifier, hide=(0.0, 1.0), segmentation=grid)(blocks(), Class(0))
    with pytest.raises(TypeError, match="num_samples must be an int"):
        Lime(classifier, num_samples=10.5)


def test_segment_image_relabels_to_contiguous_labels():
    labels = segment_image(np.zeros((4, 4, 3)), lambda img: np.array([[5, 5, 9, 9]] * 4))
    assert labels.tolist() == [[0, 0, 1, 1]] * 4
