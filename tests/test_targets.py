"""Targets: exact scores on hand-made outputs, and errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _numerics import assert_close, assert_identical, reduction

import areacam as ac


@pytest.fixture
def dense() -> torch.Tensor:
    """A (2, 3, 4, 5) output whose value encodes its position: integers, so that every sum (and a mean over
    a power-of-two or exactly divided count) is exact in float32, whatever its order."""
    return torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)


def test_class_index_int_sequence_and_argmax():
    logits = torch.tensor([[0.0, 5.0, 1.0], [7.0, 0.0, 1.0]])
    x = torch.zeros(2, 1, 2, 2)
    assert ac.Class(2)(logits, x).tolist() == [1.0, 1.0]
    assert ac.Class([1, 0])(logits, x).tolist() == [5.0, 7.0]
    assert ac.Class()(logits, x).tolist() == [5.0, 7.0]  # argmax over classes, per sample
    assert ac.Class(-1)(logits, x).tolist() == [1.0, 1.0]


def test_class_count_must_match_batch():
    logits = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="2 indices for a batch of 3"):
        ac.Class([1, 2])(logits, torch.zeros(3, 1, 2, 2))


def test_class_errors():
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(IndexError, match="class index 4 is out of range for an output of 4"):
        ac.Class(4)(torch.zeros(2, 4), x)
    with pytest.raises(ValueError, match="dense output"):
        ac.Class(0)(torch.zeros(2, 4, 3, 3), x)
    with pytest.raises(TypeError):
        ac.Class(1.5)


def test_area_box_sum_mean_channel(dense):
    x = torch.zeros(2, 3, 4, 5)
    box = (1, 2, 3, 4)
    expected = dense[:, :, 1:3, 2:4].sum(dim=(1, 2, 3))
    assert_identical(ac.Area(box=box)(dense, x), expected)
    assert_identical(ac.Area(box=box, reduce="mean")(dense, x), expected / 12)
    assert_identical(ac.Area(box=box, channel=2)(dense, x), dense[:, 2, 1:3, 2:4].sum(dim=(1, 2)))
    assert_identical(ac.Area()(dense, x), dense.sum(dim=(1, 2, 3)))
    assert_identical(ac.Pixel(3, 4, channel=1)(dense, x), dense[:, 1, 3, 4])
    # regression: channel=-1 sliced out[:, -1:0], an empty tensor, and scored 0
    assert_identical(ac.Area(box=box, channel=-1)(dense, x), dense[:, 2, 1:3, 2:4].sum(dim=(1, 2)))


@pytest.mark.parametrize("as_numpy", [False, True])
def test_area_masks_bool_float_and_per_sample(dense, as_numpy):
    x = torch.zeros(2, 3, 4, 5)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 0] = mask[3, 4] = True
    weights = torch.zeros(2, 4, 5)
    weights[0, 1, 1] = 0.5
    weights[1, 2, 2] = 2.0
    convert = (lambda t: t.numpy()) if as_numpy else (lambda t: t)
    got = ac.Area(mask=convert(mask), channel=0)(dense, x)
    assert_identical(got, dense[:, 0, 0, 0] + dense[:, 0, 3, 4])
    got = ac.Area(mask=convert(weights), channel=0)(dense, x)
    assert_identical(got, torch.stack([0.5 * dense[0, 0, 1, 1], 2.0 * dense[1, 0, 2, 2]]))
    mean = ac.Area(mask=convert(weights), channel=0, reduce="mean")(dense, x)
    assert_identical(mean, torch.stack([dense[0, 0, 1, 1], dense[1, 0, 2, 2]]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"box": (0, 0, 5, 5)}, ValueError, r"outside the output of size \(4, 5\)"),
        ({"mask": np.ones((3, 5), bool)}, ValueError, "does not fit the output"),
        ({"mask": np.ones((3, 4, 5), bool)}, ValueError, "does not fit the output"),
        ({"channel": 3}, IndexError, "channel 3 is out of range for an output of 3"),
    ],
)
def test_area_errors_at_call(dense, kwargs, error, match):
    with pytest.raises(error, match=match):
        ac.Area(**kwargs)(dense, torch.zeros(2, 3, 4, 5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"box": (2, 2, 2, 4)}, "empty"),
        ({"box": (0, 0, 2)}, "4 ints"),
        ({"box": (-1, 0, 2, 2)}, "negative"),
        ({"mask": np.zeros((4, 5))}, "empty"),
        ({"mask": np.ones((1, 1, 2, 3, 4))}, r"\(H, W\) or \(B, H, W\)"),
        ({"mask": np.ones((4, 5)), "box": (0, 0, 1, 1)}, "not both"),
        ({"reduce": "max"}, "reduce"),
    ],
)
def test_area_errors_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ac.Area(**kwargs)


def test_segment_multiclass_and_binary():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = torch.tensor([[5.0, -1.0], [3.0, 0.0]])
    logits[0, 2] = torch.tensor([[0.0, 4.0], [0.0, 0.5]])
    x = torch.zeros(1, 1, 2, 2)
    # class 1 wins at (0, 0) and (1, 0); class 2 at (0, 1) and (1, 1)
    assert ac.Segment(1)(logits, x).item() == 8.0
    assert ac.Segment(2)(logits, x).item() == 4.5
    assert ac.Segment(2, box=(0, 1, 1, 2))(logits, x).item() == 4.0
    assert ac.Segment(0)(logits, x).item() == 0.0  # nothing predicted as class 0
    binary = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    assert ac.Segment(0)(binary, x).item() == 2.5
    with pytest.raises(IndexError, match="single-channel"):
        ac.Segment(1)(binary, x)
    with pytest.raises(IndexError, match="out of range"):
        ac.Segment(3)(logits, x)


def test_latent_and_output_selector():
    recon, mu, logvar = torch.zeros(2, 1, 4, 4), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2, 2)
    x = torch.zeros(2, 1, 4, 4)
    assert ac.Latent(1)((recon, mu, logvar), x).tolist() == [2.0, 4.0]
    assert ac.Latent(0, output="mu")({"mu": mu}, x).tolist() == [1.0, 3.0]
    assert ac.Latent(0, output=lambda out: out[1] * 2)((recon, mu, logvar), x).tolist() == [2.0, 6.0]
    with pytest.raises(TypeError, match="single tensor"):
        ac.Latent(0)(mu, x)
    with pytest.raises(IndexError, match="latent index 2 is out of range"):
        ac.Latent(2)((recon, mu, logvar), x)
    with pytest.raises(KeyError, match="'out'"):
        ac.Area()({"aux": recon, "more": recon}, x)
    # one tensor entry has only one thing it could mean (diffusers' ``sample``)
    assert torch.equal(ac.Area()({"aux": recon, "note": "text"}, x), ac.Area()(recon, x))
    with pytest.raises(IndexError, match="out of range"):
        ac.Latent(0, output=5)((recon, mu), x)


def test_reconstruction_error_region():
    x = torch.zeros(1, 1, 3, 3)
    recon = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    assert ac.ReconstructionError()((recon, None), x).item() == float((recon**2).sum())
    assert ac.ReconstructionError(box=(1, 1, 3, 3))((recon,), x).item() == 16 + 25 + 49 + 64
    with pytest.raises(ValueError, match="shaped like the input"):
        ac.ReconstructionError()((torch.zeros(1, 1, 2, 2),), x)


def test_score_shape_checked():
    x = torch.zeros(2, 1, 2, 2)
    assert ac.Score(lambda out: out[0].sum(1))((torch.ones(2, 3),), x).tolist() == [3.0, 3.0]
    with pytest.raises(ValueError, match=r"expected \(2,\)"):
        ac.Score(lambda out: out.sum())(torch.ones(2, 3), x)


def test_bind_freezes_per_sample_choices_at_the_original_output():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    assert ac.Class().bind(1, logits).index == 0  # sample 1's argmax, any batch size
    assert ac.Class().bind([1, 0, 1], logits).index == [0, 1, 0]
    assert ac.Class([2, 1]).bind([1, 1, 0]).index == [1, 1, 2]
    unbound = ac.Class()
    assert unbound.bind([0, 1]) is unbound  # no output: each new sample's own argmax
    dense = torch.zeros(2, 3, 4, 4)
    dense[0, 2, :2] = 5.0  # sample 0 predicts class 2 on its top two rows
    frozen = ac.Segment(2).bind(0, dense)
    perturbed = torch.randn(5, 3, 4, 4)
    terms = perturbed[:, 2, :2].flatten(1)  # 8 floats summed in another layout: rule 3
    allowed = reduction(8) * terms.abs().sum(1)
    assert_close(frozen(perturbed, torch.zeros(5, 1, 4, 4)), terms.sum(1), allowed, "frozen Segment")
    assert ac.Segment(2).bind(1, dense)(perturbed, perturbed).eq(0).all()  # nothing predicted there
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[1, 3, 3] = True
    area = ac.Area(mask=masks).bind([1, 1])
    out = torch.arange(2 * 16.0).view(2, 1, 4, 4)
    assert_identical(area(out, out), torch.tensor([15.0, 31.0]))


def test_bind_rejects_bad_samples():
    with pytest.raises(TypeError, match="samples must be"):
        ac.Class().bind("0")
    with pytest.raises(IndexError, match="sample 5 is out of range"):
        ac.Class([0, 1]).bind([5])


def test_per_sample_classes_equal_one_target_per_sample():
    """Segment([c_0, ..., c_B-1]) and Area(mask, channel=[...]) (the run's segment:label, area:mask:label) score
    each sample as Segment(c_b) / Area(mask_b, channel=c_b); bind() (LIME, SmoothGrad, the metrics) keeps each
    sample's class and freezes the predicted pixels."""
    torch.manual_seed(0)
    out = torch.randn(3, 4, 8, 8)
    x = torch.zeros(3, 3, 8, 8)
    classes = [1, 3, 0]
    expected = torch.cat([ac.Segment(c)(out[i : i + 1], x[i : i + 1]) for i, c in enumerate(classes)])
    assert_identical(ac.Segment(classes)(out, x), expected)  # the same sums of the same logits
    masks = torch.rand(3, 8, 8) > 0.5
    region = ac.Area(mask=masks.float(), channel=classes)(out, x)
    by_area = torch.cat(
        [ac.Area(mask=masks[i].float(), channel=c)(out[i : i + 1], x[i : i + 1]) for i, c in enumerate(classes)]
    )
    assert_identical(region, by_area)
    copies = ac.Segment(classes).bind(1, out)  # a batch of perturbations of sample 1, pixels frozen at `out`
    assert copies.cls == 3
    new = torch.randn(5, 4, 8, 8)
    frozen = (out[1].argmax(0) == 3).float()
    terms = (new[:, 3] * frozen).flatten(1)  # 64 logits summed in another layout (rule 3)
    assert_close(copies(new, torch.zeros(5, 3, 8, 8)), terms.sum(1), reduction(64) * terms.abs().sum(1), "bound")
    rows = ac.Segment(classes).bind([2, 0, 2])
    assert rows.cls == (0, 1, 0)
    assert_identical(rows(out[[2, 0, 2]], x), expected[[2, 0, 2]])
    with pytest.raises(ValueError, match="3 classes for a batch of 2"):
        ac.Segment(classes)(out[:2], x[:2])
