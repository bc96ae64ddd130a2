"""FalsePositive / FalseNegative against Area over hand-made error masks, and ac.components against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _numerics import assert_identical
from torch import nn

import areacam as ac


def segmenter(dims: int, classes: int = 3) -> nn.Module:
    """A small float64 conv net (B, 2, *spatial) -> (B, classes, *spatial)."""
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    torch.manual_seed(0)
    return nn.Sequential(conv(2, 6, 3, padding=1), nn.ReLU(), conv(6, classes, 3, padding=1)).double().eval()


def hand_masks(pred: torch.Tensor, truth: torch.Tensor, cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """False-positive and false-negative masks of class ``cls``, written from their definitions."""
    fp = torch.zeros_like(pred, dtype=torch.bool)
    fn = torch.zeros_like(pred, dtype=torch.bool)
    for index in np.ndindex(*pred.shape):
        p, t = int(pred[index]), int(truth[index])
        fp[index] = p == cls and t != cls
        fn[index] = t == cls and p != cls
    return fp, fn


@pytest.mark.parametrize("spatial", [(8, 8), (4, 6, 6)])
def test_errors_equal_area_over_hand_made_masks(spatial):
    model = segmenter(len(spatial))
    torch.manual_seed(1)
    x = torch.randn(2, 2, *spatial, dtype=torch.float64)
    truth = torch.randint(0, 3, (2, *spatial))
    with torch.no_grad():
        pred = model(x).argmax(1)
    layer = "0"
    for cls in range(3):
        fp, fn = hand_masks(pred, truth, cls)
        assert fp.any() and fn.any()
        cam = ac.GradCAM(model, layer)
        got = cam(x, [ac.FalsePositive(cls, truth), ac.FalseNegative(cls, truth)])
        want = cam(x, [ac.Area(mask=fp, channel=cls), ac.Area(mask=fn, channel=cls)])
        assert_identical(got.scores, want.scores, "scores")
        assert_identical(got.raw, want.raw, "raw maps")
        assert_identical(got.maps, want.maps, "maps")


def test_shared_truth_and_bind_freeze_the_prediction():
    model = segmenter(2)
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    truth = torch.randint(0, 3, (8, 8))
    with torch.no_grad():
        out = model(x)
    fp, _ = hand_masks(out.argmax(1), truth.expand(2, 8, 8), 1)
    target = ac.FalsePositive(1, truth)
    assert_identical(target(out, x), ac.Area(mask=fp, channel=1)(out, x), "shared truth")
    bound = target.bind(1, output=out)  # sample 1's prediction is frozen; a new output is read there
    other = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    want = (other[:, 1] * fp[1]).flatten(1).sum(1)
    assert_identical(bound(other, torch.zeros(3, 2, 8, 8)), want, "frozen score")
    per_sample = ac.FalseNegative(2, truth.expand(2, 8, 8).clone()).bind([1, 1], output=out)
    _, fn = hand_masks(out.argmax(1), truth.expand(2, 8, 8), 2)
    assert_identical(per_sample(other[:2], x), (other[:2, 2] * fn[1]).flatten(1).sum(1), "bound rows")


def test_binary_output_reads_truth_ones_as_the_class():
    out = torch.tensor([[[[1.0, -1.0], [2.0, -3.0]]]])
    truth = torch.tensor([[0, 1], [1, 0]])
    x = torch.zeros(1, 1, 2, 2)
    assert ac.FalsePositive(0, truth)(out, x).tolist() == [1.0]  # predicted at (0, 0), truth 0
    assert ac.FalseNegative(0, truth)(out, x).tolist() == [-1.0]  # missed at (0, 1)


def test_empty_error_region_is_zero_and_degenerate():
    model = segmenter(2)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        truth = model(x).argmax(1)  # a perfect prediction: no error anywhere
    expl = ac.GradCAM(model, "0")(x, [ac.FalsePositive(0, truth), ac.FalseNegative(0, truth)])
    assert expl.scores.tolist() == [[0.0, 0.0]]
    assert expl.degenerate.all() and torch.isfinite(expl.maps).all() and (expl.maps == 0).all()


def test_error_target_bad_input():
    out = torch.zeros(2, 3, 8, 8)
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"mask of shape \(8, 7\) does not fit"):
        ac.FalsePositive(0, torch.zeros(8, 7, dtype=torch.long))(out, x)
    with pytest.raises(ValueError, match="3 rows for a batch of 2"):
        ac.FalseNegative(0, torch.zeros(3, 8, 8, dtype=torch.long))(out, x)
    with pytest.raises(IndexError, match="class 3 is out of range for an output of 3"):
        ac.FalsePositive(3, torch.zeros(8, 8, dtype=torch.long))(out, x)
    with pytest.raises(IndexError, match="class -1 must be >= 0"):
        ac.FalseNegative(-1, torch.zeros(8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class labels"):
        ac.FalsePositive(0, torch.zeros(8, 8))
    with pytest.raises(ValueError, match="labels must be >= 0"):
        ac.FalsePositive(0, -torch.ones(8, 8, dtype=torch.long))
    mask_255 = torch.zeros(8, 8, dtype=torch.long)
    mask_255[2:5, 2:5] = 255  # a saved 0/255 mask is not labels: it would silently make every pixel "not cls"
    with pytest.raises(
        ValueError, match=r"truth holds label 255, but the output has 3 channel\(s\) and needs labels 0..2"
    ):
        ac.FalsePositive(1, mask_255)(out, x)
    with pytest.raises(ValueError, match="needs a 0/1 mask"):
        ac.FalseNegative(0, mask_255)(out[:, :1], x)
    assert ac.FalseNegative(0, mask_255.clamp(max=1))(out[:, :1], x).tolist() == [0.0, 0.0]  # 0/1 is fine


@pytest.mark.parametrize("shape", [(40, 50), (12, 14, 16)])
@pytest.mark.parametrize("connectivity", [None, 1])
def test_components_equal_scipy_label(shape, connectivity):
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    mask = rng.random(shape) < 0.3
    full = len(shape) if connectivity is None else connectivity
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(len(shape), full))
    sizes = sorted(np.bincount(labels.ravel())[1:].tolist(), reverse=True)
    blobs = ac.components(torch.from_numpy(mask), connectivity=connectivity)
    assert blobs.dtype == torch.bool and blobs.shape == (count, *shape)
    assert blobs.flatten(1).sum(1).tolist() == sizes  # largest first
    assert (blobs.sum(0) == torch.from_numpy(mask)).all()  # disjoint, covering the mask
    for blob in blobs[:5]:  # each is one whole scipy component
        assert len(np.unique(labels[blob.numpy()])) == 1
        assert (labels == labels[blob.numpy()][0]).sum() == blob.sum()
    kept = ac.components(mask, connectivity=connectivity, min_size=3)
    assert kept.flatten(1).sum(1).tolist() == [s for s in sizes if s >= 3]


def test_components_ties_empty_and_bad_input():
    mask = torch.zeros(6, 6, dtype=torch.bool)
    mask[4, 4] = mask[0, 0] = True
    mask[2, 1:4] = True
    blobs = ac.components(mask)
    assert blobs.flatten(1).sum(1).tolist() == [3, 1, 1]
    assert blobs[1, 0, 0] and blobs[2, 4, 4]  # equal sizes in raster order
    diagonal = torch.eye(3, dtype=torch.bool)
    assert len(ac.components(diagonal)) == 1 and len(ac.components(diagonal, connectivity=1)) == 3
    assert ac.components(torch.zeros(4, 4, dtype=torch.bool)).shape == (0, 4, 4)
    with pytest.raises(ValueError, match="one"):
        ac.components(torch.zeros(2, 2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="connectivity must be 1 to 2"):
        ac.components(mask, connectivity=3)
    with pytest.raises(ValueError, match="min_size"):
        ac.components(mask, min_size=0)
    with pytest.raises(ValueError, match="0/1 mask"):
        ac.components(torch.full((3, 3), 2))


def test_demo_false_positive_maps_follow_their_definition():
    from areacam.app.demo.errors import ErrorStats, false_positive_maps

    model = segmenter(2, classes=4)
    torch.manual_seed(2)
    x = torch.randn(5, 2, 8, 8, dtype=torch.float64)
    truth = torch.randint(0, 4, (5, 8, 8))
    truth[3] = model(x[3:4]).argmax(1)[0].detach()  # a perfect prediction: no false positive in image 3
    with torch.no_grad():
        pred = model(x).argmax(1)
    maps, regions, classes, rows = false_positive_maps(model, "0", x, truth, pred)
    assert rows == [0, 1, 2, 4]
    for i, b in enumerate(rows):
        sizes = [int(((pred[b] == c) & (truth[b] != c)).sum()) for c in (1, 2, 3)]
        assert int(classes[i]) == 1 + sizes.index(max(sizes))  # the largest false positive, first on ties
        assert torch.equal(regions[i], (pred[b] == classes[i]) & (truth[b] != classes[i]))
        alone = ac.GradCAM(model, "0")(x[b : b + 1], ac.FalsePositive(int(classes[i]), truth[b : b + 1]))
        assert float((maps[i] - alone.maps[0, 0].float()).abs().max()) <= 1e-6  # float32 maps of float64 sums
    stats = ErrorStats(maps, regions, regions & False)
    want = [float((m * r).sum() / m.sum()) for m, r in zip(maps, regions) if m.sum() > 0]
    assert abs(stats.inside - sum(want) / len(want)) < 1e-6 and stats.distractor_share == 0.0
