"""Bad input gets a clear error naming the problem, before heavy work where possible."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import areacam as ac

ALL = [ac.GradCAM, ac.GradCAMPlusPlus, ac.HiResCAM, ac.LayerCAM]


def test_unknown_layer_lists_closest_names(resnet):
    with pytest.raises(ValueError, match=r"no layer named 'layer5'.*'layer4'"):
        ac.GradCAM(resnet, "layer5")
    with pytest.raises(ValueError, match=r"'layer4\.1\.conv2'"):
        ac.GradCAM(resnet, "layer4.1.conv3")
    with pytest.raises(ValueError, match="not a module of the model"):
        ac.GradCAM(resnet, nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="module or a dotted name"):
        ac.GradCAM(resnet, 4)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.rand(3, 32, 32), ValueError, "4-D"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, r"float tensor, got torch\.uint8"),
        (torch.full((1, 3, 32, 32), float("nan")), ValueError, "NaN"),
        (torch.zeros(0, 3, 32, 32), ValueError, "empty"),
        ([[1.0]], TypeError, "torch.Tensor"),
        (torch.rand(1, 3, 32, 32, dtype=torch.float64), TypeError, "float64 but the model's parameters are"),
    ],
)
@pytest.mark.parametrize("make", [lambda m: ac.GradCAM(m, "layer4"), ac.Saliency])
def test_bad_input(resnet, x, error, match, make):
    with pytest.raises(error, match=match):
        make(resnet)(x, ac.Class(0))


def test_no_targets_and_wrong_target_types(resnet, images):
    explainer = ac.GradCAM(resnet, "layer4")
    with pytest.raises(ValueError, match="no targets"):
        explainer(images, [])
    with pytest.raises(TypeError, match=r"ac\.Score"):
        explainer(images, [lambda out: out[:, 0]])
    with pytest.raises(TypeError, match="Target or a list"):
        explainer(images, 3)


def test_class_on_dense_output_and_box_outside(unet, images):
    with pytest.raises(ValueError, match="dense output"):
        ac.GradCAM(unet, "encoder.layer4")(images, ac.Class(0))
    with pytest.raises(ValueError, match=r"outside the output of size \(64, 64\)"):
        ac.GradCAM(unet, "encoder.layer4")(images, ac.Area(box=(0, 0, 65, 8)))
    with pytest.raises(IndexError, match="Segment class 10 is out of range for an output of 3"):
        ac.Saliency(unet)(images, ac.Segment(10))
    with pytest.raises(IndexError, match="channel 3 is out of range"):
        ac.GradCAM(unet, "encoder.layer4")(images, ac.Pixel(0, 0, channel=3))


def test_latent_on_plain_tensor_output(resnet, images):
    with pytest.raises(TypeError, match="single tensor"):
        ac.GradCAM(resnet, "layer4")(images, ac.Latent(0))


def test_layer_not_on_path_is_named(autoencoder):
    x = torch.rand(1, 3, 32, 32)
    # mu is computed from the encoder: the decoder's layers receive no gradient from it
    with pytest.raises(ValueError, match=r"layer 'decoder\.0' receives no gradient from Latent\(0\)"):
        ac.GradCAM(autoencoder, "decoder.0")(x, ac.Latent(0))


class Detached(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(x).detach().mean(dim=(2, 3)))


def test_detached_branch_is_named():
    with pytest.raises(ValueError, match=r"layer 'conv' receives no gradient from Class\(0\)"):
        ac.GradCAM(Detached(), "conv")(torch.rand(1, 3, 8, 8), ac.Class(0))


def test_layer_that_is_not_4d(resnet, images):
    with pytest.raises(ValueError, match=r"'fc' gives an output of shape \(2, 10\), which is not a feature map"):
        ac.GradCAM(resnet, "fc")(images, ac.Class(0))


def test_shared_module_running_twice():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), relu, nn.Conv2d(3, 3, 3, padding=1), relu)
    with pytest.raises(ValueError, match="ran more than once"):
        ac.GradCAM(model, "1")(torch.rand(1, 3, 8, 8), ac.Area())


def test_nan_output_is_an_error_not_a_nan_map():
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Flatten(), nn.Linear(3 * 8 * 8, 2))
    with torch.no_grad():
        model[2].bias[1] = float("nan")
    with pytest.raises(ValueError, match=r"score of target Class\(1\) on sample 0 is not finite"):
        ac.GradCAM(model, "0")(torch.rand(1, 3, 8, 8), ac.Class(1))


def test_constant_map_is_flagged_not_nan():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every activation is negative: ReLU zeroes all gradients
    for method in ALL:
        expl = method(model, "1")(torch.rand(2, 3, 8, 8), ac.Class(0))
        assert expl.degenerate.all()
        assert torch.equal(expl.maps, torch.zeros_like(expl.maps))
    expl = ac.Saliency(model)(torch.rand(2, 3, 8, 8), ac.Class(0))
    assert expl.degenerate.all() and torch.equal(expl.maps, torch.zeros_like(expl.maps))
