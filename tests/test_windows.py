"""ac.SlidingWindow: MONAI's sliding-window inference as a module, and CAMs stitched from its patches."""

from __future__ import annotations

import pytest
import torch
from _numerics import assert_close, assert_identical, rounded
from torch import nn

import areacam as ac
from areacam.core.explanation import upsample
from areacam.methods.passes import layer_gradients

monai = pytest.importorskip("monai")
from monai.inferers import sliding_window_inference  # noqa: E402
from monai.networks import nets  # noqa: E402


def _unet() -> nn.Module:
    torch.manual_seed(0)
    return nets.UNet(3, 1, 2, (4, 8, 16), (2, 2), num_res_units=1).eval()


class _Inferer(nn.Module):
    """MONAI's inferer as a model, for the comparisons."""

    def __init__(self, model: nn.Module, roi, overlap, mode, batch_size):
        super().__init__()
        self.model, self.args = model, (roi, overlap, mode, batch_size)

    def forward(self, x):
        roi, overlap, mode, batch_size = self.args
        return sliding_window_inference(x, roi, batch_size, self.model, overlap=overlap, mode=mode)


@pytest.mark.parametrize(
    ("shape", "roi", "overlap", "mode", "batch_size"),
    [
        ((1, 1, 20, 19, 17), (8, 8, 8), 0.25, "constant", 1),  # sizes no multiple of the window
        ((2, 1, 20, 19, 17), (8, 8, 8), 0.5, "gaussian", 3),  # batches of windows across samples
        ((1, 1, 16, 16, 16), 16, 0.25, "gaussian", 1),  # one window
        ((1, 1, 17, 12, 12), (8, 12, 4), 0.0, "constant", 2),
    ],
)
def test_forward_equals_monai(shape, roi, overlap, mode, batch_size):
    # Rule 1: the same ops in the same order (window order, weights, accumulation, one division).
    model = _unet()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = ac.SlidingWindow(model, roi, overlap, mode, batch_size)(x)
        theirs = sliding_window_inference(x, roi, batch_size, model, overlap=overlap, mode=mode)
    assert_identical(ours, theirs, "sliding-window output")


@pytest.mark.parametrize("mode", ["constant", "gaussian"])
def test_saliency_through_window_equals_monai(mode):
    model = _unet().double()
    x = torch.randn(1, 1, 12, 20, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = ac.Area(box=(2, 5, 1, 10, 15, 9), channel=1)
    ours = ac.Saliency(ac.SlidingWindow(model, 8, 0.25, mode))(x, target)
    theirs = ac.Saliency(_Inferer(model, 8, 0.25, mode, 1))(x, target)
    assert_close(ours.raw, theirs.raw, rounded(theirs.raw.double()), "saliency through the window")


def _networks():
    torch.manual_seed(0)
    dyn = nets.DynUNet(3, 1, 2, [3, 3, 3], [1, 2, 2], [2, 2], filters=[4, 8, 16])
    unetr = nets.UNETR(1, 2, img_size=32, feature_size=4, hidden_size=24, mlp_dim=48, num_heads=2)
    return [
        pytest.param(_unet(), "model.model.1", id="UNet"),
        pytest.param(dyn, "model.upsamples.0", id="DynUNet"),
        pytest.param(unetr, "model.decoder3", id="UNETR"),
    ]


@pytest.mark.parametrize(("net", "layer"), _networks())
def test_stitched_gradcam_equals_the_patch_own(net, layer):
    # No overlap, a target inside the second of two windows: there, the stitched map is that patch's
    # own Grad-CAM (float64 model, one rounding); in the first window no gradient arrives, the map is 0.
    net = net.double().eval()
    x = torch.randn(1, 1, 32, 32, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    window = ac.SlidingWindow(net, 32, overlap=0.0)
    stitched = ac.GradCAM(window, layer)(x, ac.Area(box=(8, 8, 40, 24, 24, 56), channel=1))
    acts, grads, scores, _, _ = layer_gradients(
        net, layer[len("model.") :], x[..., 32:], ac.Area(box=(8, 8, 8, 24, 24, 24), channel=1)
    )
    weights = grads.mean(dim=(3, 4, 5))  # Grad-CAM by hand, in float64
    expected = upsample(torch.relu(torch.einsum("bkc,bcdhw->bkdhw", weights, acts)), (32, 32, 32))
    assert stitched.maps.shape == (1, 1, 32, 32, 64)
    assert_close(stitched.raw[..., 32:], expected, rounded(expected), "stitched map in the target's patch")
    assert torch.equal(stitched.raw[..., :32], torch.zeros_like(stitched.raw[..., :32]))
    assert_close(stitched.scores, scores, rounded(scores), "scores")


def test_swinunetr_decoder_stitches():
    torch.manual_seed(0)
    net = nets.SwinUNETR(in_channels=1, out_channels=2, feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    window = ac.SlidingWindow(net.eval(), 64, overlap=0.25, mode="gaussian")
    x = torch.randn(1, 1, 64, 64, 64, generator=torch.Generator().manual_seed(4))
    expl = ac.GradCAM(window, "model.decoder3")(x, [ac.Area(box=(8, 8, 8, 40, 40, 40), channel=1), ac.Segment(0)])
    assert expl.maps.shape == (1, 2, 64, 64, 64) and torch.isfinite(expl.maps).all()
    assert not expl.degenerate.any() and expl.layout == "nchw, stitched from 1 patches"


def test_batched_windows_give_the_same_maps_and_leave_the_model_as_found():
    net = _unet().double()
    net.train()
    x = torch.randn(1, 1, 20, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    targets = [ac.Area(box=(0, 0, 0, 6, 6, 6), channel=0), ac.Area(box=(10, 2, 2, 18, 10, 10), channel=1)]
    one = ac.GradCAM(ac.SlidingWindow(net, 8, 0.5, "gaussian", 1), "model.model.1", layout="nchw")(x, targets)
    four = ac.GradCAM(ac.SlidingWindow(net, 8, 0.5, "gaussian", 4), "model.model.1", layout="nchw")(x, targets)
    assert_close(four.raw, one.raw, rounded(one.raw.double()), "maps of 1 and 4 windows a call")
    assert net.training and all(p.grad is None for p in net.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_metatensor_input_gives_plain_maps():
    from monai.data import MetaTensor

    net = _unet()
    x = MetaTensor(torch.randn(1, 1, 16, 16, 16), affine=torch.diag(torch.tensor([2.0, 2.0, 3.0, 1.0])))
    expl = ac.GradCAM(ac.SlidingWindow(net, 8), "model.model.1", layout="nchw")(x, ac.Segment(1))
    plain = ac.GradCAM(ac.SlidingWindow(net, 8), "model.model.1", layout="nchw")(x.as_tensor(), ac.Segment(1))
    assert type(expl.maps) is torch.Tensor
    assert_identical(expl.maps, plain.maps, "maps of a MetaTensor and of its tensor")


def test_field_and_gradient_free_cams_say_why_not():
    window = ac.SlidingWindow(_unet(), 8)
    x = torch.randn(1, 1, 16, 16, 16)
    with pytest.raises(ValueError, match="field does not run through a SlidingWindow"):
        ac.GradCAM(window, "model.model.1", mode="field", layout="nchw")(x, [ac.Segment(1)] * 3)
    with pytest.raises(ValueError, match=r"ran more than once.*SlidingWindow"):
        ac.ScoreCAM(window, "model.model.1", layout="nchw")(x, ac.Segment(1))


@pytest.mark.parametrize(
    ("kwargs", "shape", "match"),
    [
        ({"roi_size": 20}, (1, 1, 16, 16, 16), r"window \(20, 20, 20\) is larger than the volume"),
        ({"roi_size": 16, "overlap": 1.0}, None, r"overlap must be a number in \[0, 1\), got 1.0"),
        ({"roi_size": 16, "overlap": -0.1}, None, r"overlap must be a number in \[0, 1\), got -0.1"),
        ({"roi_size": 16, "mode": "linear"}, None, "mode must be one of"),
        ({"roi_size": (16, 16)}, (1, 1, 16, 16, 16), "whose convolutions are 3-D: give roi_size 3 ints"),
        ({"roi_size": (16, 0, 16)}, None, "roi_size must be a positive int"),
        ({"roi_size": 16, "batch_size": 0}, None, "batch_size must be a positive int"),
    ],
)
def test_bad_windows(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        ac.SlidingWindow(_unet(), **kwargs)(torch.randn(shape))


def test_two_d_model_in_a_three_d_window():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    with pytest.raises(ValueError, match=r"3-D window .* convolutions are 2-D"):
        ac.SlidingWindow(model, (16, 16, 16))
    with pytest.raises(ValueError, match="convolutions are 2-D"):
        ac.SlidingWindow(model, 16)(torch.randn(1, 1, 16, 16, 16))
