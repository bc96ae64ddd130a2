"""Layout by provenance: a shape that ties channels-first and channels-last (C equals the grid) is settled
from the layer's own autograd graph, or raises as before.

Models come from small configs with random weights (diffusers, smp, MONAI, the reference zoo). A decided
layer's maps are the maps of the same call with the layout given: the same computation, bit for bit.
"""

from __future__ import annotations

import pytest
import torch
from _modules import ChannelsFirst, ChannelsLast, tiny_unet2d
from _numerics import assert_close, assert_identical, rounded
from torch import nn

import areacam as ac
from areacam import models
from areacam.layers import AmbiguousLayoutError, LayerCapture, LayerView, layer_table
from areacam.layers.provenance import FixedOutputs, settle


def _same_as_given(model: nn.Module, layer: str, x: torch.Tensor, targets, layout: str = "nchw", **call) -> str:
    """The tie is decided with no layout argument, to the maps of ``layout=``; returns the recorded reading."""
    decided = ac.GradCAM(model, layer)(x, targets, **call)
    given = ac.GradCAM(model, layer, layout=layout)(x, targets, **call)
    assert given.layout == layout
    assert not decided.degenerate.all()
    assert_identical(decided.raw, given.raw, f"{layer} raw")
    assert_identical(decided.maps, given.maps, f"{layer} maps")
    assert_identical(decided.scores, given.scores, f"{layer} scores")
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    return decided.layout


def test_diffusers_up_block_at_a_tied_shape_needs_no_layout():
    model = tiny_unet2d()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([1, 40])
    shapes: list = []
    handle = model.up_blocks[0].register_forward_hook(lambda module, inputs, out: shapes.append(tuple(out.shape)))
    with torch.no_grad():
        model(x, t)
    handle.remove()
    assert shapes == [(2, 16, 16, 16)]  # on a 16x16 input: both readings fit the shape
    layout = _same_as_given(model, "up_blocks.0", x, ac.Area(box=(2, 2, 10, 10)), forward_kwargs={"timestep": t})
    assert layout == "nchw (from up_blocks.0.upsamplers.0.conv)"


def test_smp_decoder_block_tie_is_settled_by_its_last_convolution():
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=2, decoder_channels=(32, 16, 16, 8, 8)).eval().double()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # decoder.blocks.2 gives (1, 16, 16, 16) on a 64x64 input
    layout = _same_as_given(model, "decoder.blocks.2", x, ac.Segment(1))
    assert layout == "nchw (from decoder.blocks.2.conv2.1)"


def test_reference_vae_relu_after_its_convolution():
    model = models.create("vae", width=16, input_size=32).eval().double()
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    layout = _same_as_given(model, "encoder.relu1", x, ac.Area(box=(4, 4, 20, 20)))  # (2, 16, 16, 16)
    assert layout == "nchw (from encoder.conv1)"


def test_monai_skip_connection_on_a_tied_grid():
    nets = pytest.importorskip("monai.networks.nets")
    torch.manual_seed(0)
    model = nets.UNet(3, 1, 2, (4, 8, 16), (2, 2), num_res_units=1).eval().double()
    x = torch.randn(1, 1, 16, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    # model.1: torch.cat of a residual unit's output and its submodule's, C=8 on an 8x8x8 grid
    layout = _same_as_given(model, "model.1", x, ac.Segment(1))
    assert layout == "nchw (from model.0.residual)"


class _LinearNorm(nn.Module):
    """A channels-last block: ``norm(fc(x)) + fc(x)`` on ``(B, H, W, C)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc, self.norm, self.act = nn.Linear(channels, channels), nn.LayerNorm(channels), nn.GELU()

    def forward(self, x):
        h = self.fc(x)
        return self.act(self.norm(h)) + h


class _Permuted(nn.Module):
    """A convolution whose output goes through a permute and back inside the block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _Reshaped(nn.Module):
    """A convolution whose output is flattened and reshaped back inside the block."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        h = self.conv(x)
        return torch.relu(h.flatten(2).reshape(h.shape))


class _Mixed(nn.Module):
    """A channels-first convolution added to a channels-last linear output of the same shape."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(channels, channels, 1), nn.Linear(channels, channels)

    def forward(self, x):
        return self.conv(x) + self.fc(x.permute(0, 2, 3, 1))


def _net(block: nn.Module, last: bool = False) -> nn.Module:
    """``(B, 3, 8, 8)`` -> a block at ``(B, 8, 8, 8)`` (channels-last when ``last``) -> ``(B, 2, 8, 8)``."""
    torch.manual_seed(0)
    head = [ChannelsFirst()] if last else []
    stem = [nn.Conv2d(3, 8, 3, padding=1)] + ([ChannelsLast()] if last else [])
    tail = [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)]
    return nn.Sequential(*stem, block, *head, *tail).eval().double()


def test_linear_and_layernorm_block_is_channels_last():
    model = _net(_LinearNorm(8), last=True)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    layout = _same_as_given(model, "2", x, ac.Area(box=(0, 0, 4, 4), channel=1), layout="nhwc")
    assert layout == "nhwc (from 2.fc)"


@pytest.mark.parametrize("block", [_Permuted, _Reshaped, _Mixed], ids=["permute", "reshape", "nchw+nhwc"])
def test_ties_the_graph_does_not_settle_still_raise(block):
    model = _net(block(8))
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(AmbiguousLayoutError, match=r"autograd graph does not settle it.*layout='nchw'"):
        ac.GradCAM(model, "1")(x, ac.Pixel(2, 2))
    with pytest.raises(AmbiguousLayoutError, match="autograd graph does not settle it"):
        ac.GradCAM(model, "1", mode="field")(x, [ac.Pixel(2, 2), ac.Pixel(5, 5)])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert "ambiguous" in next(row["layout"] for row in layer_table(model, x) if row["name"] == "1")


def test_field_and_perturbation_cams_read_the_tie_as_the_backward_path():
    model = models.create("vae", width=16, input_size=32).eval().double()
    x = torch.rand(2, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    targets = [ac.Area(box=(0, 0, 16, 16)), ac.Area(box=(16, 16, 32, 32)), ac.ReconstructionError()]
    backward = ac.GradCAM(model, "encoder.relu1", mode="backward")(x, targets)
    field = ac.GradCAM(model, "encoder.relu1").field(x)(targets)
    assert field.layout == backward.layout == "nchw (from encoder.conv1)"
    assert_close(field.raw, backward.raw, rounded(backward.raw), "field raw")
    for method in (ac.ScoreCAM, ac.EigenCAM):
        assert method(model, "encoder.relu1")(x[:1], targets[0]).layout == "nchw (from encoder.conv1)"


def test_captures_and_the_layer_table_say_where_the_layout_came_from():
    model = models.create("vae", width=16, input_size=32).eval()
    x = torch.rand(1, 1, 32, 32)
    with LayerCapture(model, "encoder.relu1", mode="value") as capture:
        capture.run(x)
        assert str(capture.layout) == "nchw (from encoder.conv1)"
    rows = {row["name"]: row["layout"] for row in layer_table(model, x)}
    assert rows["encoder.relu1"] == "nchw 16x16, C=16 (from encoder.conv1)"
    assert rows["encoder.conv1"] == "nchw 16x16, C=16"  # decided by its type, as before
    maps, _ = ac.feature_maps(model, "encoder.relu1", x, channels=4)
    assert maps.shape == (1, 16, 16, 16)


def test_settle_walks_keeping_ops_and_skips_parameter_only_inputs():
    conv, scale = nn.Conv2d(4, 4, 1), nn.Parameter(torch.ones(4))
    x = torch.rand(1, 4, 4, 4, requires_grad=True)
    with FixedOutputs(nn.ModuleDict({"conv": conv})) as fixed:
        h = conv(x)
    gated = torch.sigmoid(h) * scale.view(1, -1, 1, 1) + 1.0  # the parameter's view holds no activation
    assert settle(gated.grad_fn, fixed.nodes) == ("nchw", "conv")
    assert settle(torch.cat([h, torch.relu(h)], dim=1).grad_fn, fixed.nodes) == ("nchw", "conv")
    assert settle((h + x).grad_fn, fixed.nodes) is None  # a path to the input: nothing fixes it
    assert settle(h.transpose(2, 3).grad_fn, fixed.nodes) is None
    assert settle(None, fixed.nodes) is None


def test_no_probe_when_the_shape_decides():
    calls = []
    view = LayerView()
    assert str(view.read((2, 16, 8, 8), (32, 32), "l", settle=lambda: calls.append(1))) == "nchw"
    assert calls == []
    assert str(view.read((2, 8, 8, 8), (8, 8), "l", settle=lambda: ("nhwc", "block.fc"))) == "nhwc (from block.fc)"
    with pytest.raises(AmbiguousLayoutError) as err:
        view.read((2, 8, 8, 8), (8, 8), "l")
    assert err.value.tie and "autograd graph" not in str(err.value)
