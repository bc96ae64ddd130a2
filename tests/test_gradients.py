"""Gradient methods: equality with captum, exact receptive fields, SmoothGrad conventions."""

from __future__ import annotations

import copy

import captum.attr as captum_attr
import pytest
import torch
from _modules import RegionSum
from _numerics import U32, assert_close, assert_identical, maps_allowed, rounded
from torch import nn

import areacam as ac

BOX = (8, 16, 24, 40)


def _without_inplace(model: nn.Module) -> nn.Module:
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return plain


def _check_raw(raw: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    """``(B, C, *s)`` raw of one target against a float64 reference: one float32 rounding per sample."""
    assert_close(raw, ref, rounded(ref, leading=1), what)


def test_saliency_equals_captum_class(resnet64, images64):
    expl = ac.Saliency(resnet64)(images64, [ac.Class(3), ac.Class(8)])
    for k, cls in enumerate((3, 8)):
        ref = captum_attr.Saliency(resnet64).attribute(images64, target=cls, abs=False)
        _check_raw(expl.raw[:, k], ref, f"Class({cls})")
    channel_max = expl.raw.abs().amax(2).double()  # the float32 raw: one rounding off the float64 map
    assert_close(expl.maps, _normalized(channel_max), maps_allowed(channel_max, raw_error=U32), "maps")


def _normalized(maps: torch.Tensor) -> torch.Tensor:
    low = maps.flatten(2).amin(2)[..., None, None]
    high = maps.flatten(2).amax(2)[..., None, None]
    return (maps - low) / (high - low)


def test_guided_backprop_equals_captum_with_inplace_relus(resnet64, images64):
    assert any(getattr(m, "inplace", False) for m in resnet64.modules())
    expl = ac.GuidedBackprop(resnet64)(images64, [ac.Class(3), ac.Class()])
    # captum's backward hooks need out-of-place ReLUs: compare on a copy without them
    reference = captum_attr.GuidedBackprop(_without_inplace(resnet64))
    predicted = resnet64(images64).argmax(1)
    _check_raw(expl.raw[:, 0], reference.attribute(images64, target=3), "Class(3)")
    _check_raw(expl.raw[:, 1], reference.attribute(images64, target=predicted), "Class()")
    assert all(m.inplace for m in resnet64.modules() if isinstance(m, nn.ReLU))


def test_guided_backprop_differs_from_saliency(resnet, images):
    guided = ac.GuidedBackprop(resnet)(images, ac.Class(3)).raw
    plain = ac.Saliency(resnet)(images, ac.Class(3)).raw
    assert not torch.allclose(guided, plain)


@pytest.mark.parametrize(("ours", "theirs"), [(ac.Saliency, "Saliency"), (ac.GuidedBackprop, "GuidedBackprop")])
def test_area_targets_equal_captum_wrapper(unet64, ours, theirs):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    region = RegionSum(_without_inplace(unet64), BOX, channel=0)
    expl = ours(unet64)(x, [ac.Area(box=BOX, channel=0), ac.Pixel(40, 10, channel=2)])
    method = getattr(captum_attr, theirs)(region)
    kwargs = {"abs": False} if theirs == "Saliency" else {}
    _check_raw(expl.raw[:, 0], method.attribute(x, **kwargs), "Area")


def test_guided_gradcam_equals_captum_bilinear(resnet64, images64):
    """Guided Grad-CAM is the product of two float32 results (guided backprop, Grad-CAM): two roundings
    each side of the product, four in all."""
    expl = ac.GuidedGradCAM(resnet64, "layer3")(images64, ac.Class(4))
    plain = _without_inplace(resnet64)
    ref = captum_attr.GuidedGradCam(plain, plain.layer3).attribute(images64, target=4, interpolate_mode="bilinear")
    assert_close(expl.raw[:, 0], ref, rounded(ref, leading=1, roundings=4), "raw")


def test_input_x_gradient_equals_captum(resnet64, images64):
    expl = ac.InputXGradient(resnet64)(images64, ac.Class(5))
    _check_raw(expl.raw[:, 0], captum_attr.InputXGradient(resnet64).attribute(images64, target=5), "raw")


def two_convs_rgb() -> nn.Module:
    """Two 3x3 convolutions on RGB, dense output."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1)).eval()


class TwoConvs(nn.Module):
    """Two 3x3 convolutions: each output pixel sees a 5x5 input window."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)))


METHODS = [
    ac.Saliency,
    ac.GuidedBackprop,
    ac.InputXGradient,
    lambda m: ac.SmoothGrad(m, num_samples=3, noise=0.1, random_state=0),
    lambda m: ac.GuidedGradCAM(m, "conv1"),
]


@pytest.mark.parametrize("make", METHODS)
@pytest.mark.parametrize("target", [ac.Pixel(9, 12, channel=1), ac.Area(box=(3, 4, 7, 9)), ac.Area(box=(0, 0, 2, 3))])
def test_gradient_is_zero_outside_the_receptive_field(make, target):
    torch.manual_seed(0)
    model = TwoConvs().eval()
    with torch.no_grad():
        model.conv1.bias.fill_(0.5)  # most units active, so the window is really non-zero
    x = torch.rand(1, 2, 16, 20, generator=torch.Generator().manual_seed(0)) + 0.1
    raw = make(model)(x, target).raw[0, 0]
    top, left, bottom, right = target.region.box
    inside = torch.zeros(16, 20, dtype=torch.bool)
    inside[max(top - 2, 0) : bottom + 2, max(left - 2, 0) : right + 2] = True
    assert torch.count_nonzero(raw[:, ~inside]) == 0
    assert torch.count_nonzero(raw[:, inside]) > 0


def test_smoothgrad_reproducible_and_reduces_to_saliency(resnet, images):
    first = ac.SmoothGrad(resnet, num_samples=3, random_state=7)(images, ac.Class(2))
    second = ac.SmoothGrad(resnet, num_samples=3, random_state=7)(images, ac.Class(2))
    other = ac.SmoothGrad(resnet, num_samples=3, random_state=8)(images, ac.Class(2))
    assert_identical(first.raw, second.raw)
    assert not torch.allclose(first.raw, other.raw)
    plain = ac.Saliency(resnet)(images, [ac.Class(2), ac.Class(6)])
    smooth = ac.SmoothGrad(resnet, num_samples=1, noise=0.0)(images, [ac.Class(2), ac.Class(6)])
    assert_identical(smooth.raw, plain.raw)  # one copy plus zero noise: the same pass
    assert_identical(smooth.scores, plain.scores)


def test_smoothgrad_per_sample_targets_follow_their_samples(resnet64, images64):
    # regression: noisy copies ran as one batch of samples x B and Class([i, j]) no longer matched
    both = ac.SmoothGrad(resnet64, num_samples=3, random_state=1)(images64, ac.Class([2, 7]))
    first = ac.SmoothGrad(resnet64, num_samples=3, random_state=1)(images64, ac.Class(2))
    second = ac.SmoothGrad(resnet64, num_samples=3, random_state=1)(images64, ac.Class(7))
    assert_close(both.raw[:1], first.raw[:1], rounded(first.raw[:1]), "sample 0")
    assert_close(both.raw[1:], second.raw[1:], rounded(second.raw[1:]), "sample 1")
    images = images64.float()
    weights = torch.zeros(2, 64, 64)
    weights[0, :8, :8] = 1
    weights[1, 30:, 30:] = 2
    masked = ac.SmoothGrad(two_convs_rgb(), num_samples=2, random_state=0)(images, ac.Area(mask=weights))
    assert masked.raw.shape == (2, 1, 3, 64, 64)


def test_smoothgrad_chunks_do_not_change_the_result(resnet64, images64):
    whole = ac.SmoothGrad(resnet64, num_samples=4, random_state=3, batch_size=64)(images64, ac.Class(1))
    pieces = ac.SmoothGrad(resnet64, num_samples=4, random_state=3, batch_size=2)(images64, ac.Class(1))
    assert_close(whole.raw, pieces.raw, rounded(pieces.raw), "raw")


def test_smoothgrad_arguments():
    model = TwoConvs()
    with pytest.raises(ValueError, match="samples"):
        ac.SmoothGrad(model, num_samples=0)
    with pytest.raises(ValueError, match="noise"):
        ac.SmoothGrad(model, noise=-0.1)


def test_reconstruction_error_and_latent_gradients(autoencoder):
    autoencoder = autoencoder.double()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expl = ac.Saliency(autoencoder)(x, [ac.ReconstructionError(box=(0, 0, 8, 8)), ac.Latent(2)])
    # the input is the fixed reference: the gradient flows through the model only
    inputs = x.clone().requires_grad_(True)
    recon = autoencoder(inputs)[0]
    ((recon - x)[..., 0:8, 0:8] ** 2).sum().backward()
    _check_raw(expl.raw[:, 0], inputs.grad, "ReconstructionError")
    assert expl.raw.shape == (2, 2, 3, 32, 32)


def test_guided_backprop_warns_without_relu_modules():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.GELU(), nn.Flatten(), nn.Linear(2 * 8 * 8, 3))
    x = torch.rand(1, 1, 8, 8)
    with pytest.warns(UserWarning, match="no nn.ReLU"):
        guided = ac.GuidedBackprop(model)(x, ac.Class(0))
    assert_identical(guided.raw, ac.Saliency(model)(x, ac.Class(0)).raw)  # nothing to guide: the same pass


def test_names_renamed_before_any_release_are_gone():
    """``samples=``/``chunk=`` were renamed before a release: no shim keeps them alive."""
    with pytest.raises(TypeError, match="samples"):
        ac.SmoothGrad(TwoConvs(), samples=2)
