"""Fields (areacam.field): forward-mode Grad-CAM equals the backward passes for every target type.

The models run in float64: both paths then compute the same float64 numbers in different orders (a
Jacobian-vector and a vector-Jacobian product) and round them to float32 once (tests/README.md, rule 2).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from _numerics import assert_close, maps_allowed, rounded
from torch import nn

import areacam as ac
import areacam.methods.field as field_module
from areacam.methods.field import FieldUnavailable, break_even, choose_mode
from areacam.models import create


def assert_same(got: ac.Explanation, ref: ac.Explanation) -> None:
    """Field result equals the backward-pass result: raw, maps and scores to one rounding; flags."""
    assert_close(got.raw, ref.raw, rounded(ref.raw), "raw")
    assert_close(got.maps, ref.maps, maps_allowed(ref.raw, tuple(ref.maps.shape[2:])), "maps")
    assert_close(got.scores, ref.scores, rounded(ref.scores, leading=2), "scores")
    assert torch.equal(got.degenerate, ref.degenerate)
    assert got.targets == ref.targets


def _x(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, dtype=torch.float64)


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return create("unet", num_classes=3).eval().double(), _x(2, 3, 32, 32)


def test_unet_every_region_target(unet):
    model, x = unet
    mask = torch.zeros(2, 32, 32, dtype=torch.float64)
    mask[0, 5:30, 9:20] = 1
    mask[1, 20:, :20] = 0.5
    targets = [
        ac.Area(box=(8, 8, 24, 30), channel=1),
        ac.Area(box=(3, 5, 32, 17), reduce="mean"),
        ac.Area(),
        ac.Area(mask=mask, channel=-1),
        ac.Area(mask=mask[0] > 0, reduce="mean"),
        ac.Pixel(10, 12, channel=2),
        ac.Pixel(31, 0),
        ac.Segment(1),
        ac.Segment(2, box=(0, 0, 32, 32)),
        ac.Score(lambda out: out[:, 0].pow(2).mean(dim=(1, 2)), pure=True),
    ]
    explainer = ac.GradCAM(model, "decoder.blocks.3", mode="backward")
    assert_same(explainer.field(x)(targets), explainer(x, targets))
    explainer = ac.GradCAM(model, "encoder.layer3", mode="backward")  # deep: boxes, a mask, a Segment
    deep = [*targets[:3], targets[4], targets[7]]
    assert_same(explainer.field(x[:1])(deep), explainer(x[:1], deep))


def test_signals_take_the_general_path():
    """A 1-D model: boxes (start, stop) and Pixel(t) through autograd seeds."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv1d(6, 3, 3, padding=1)).eval().double()
    x = _x(2, 2, 40)
    targets = [ac.Area(box=(5, 17), channel=1), ac.Pixel(30), ac.Area(mask=torch.rand(40))]
    explainer = ac.GradCAM(model, "0", mode="backward")
    assert_same(explainer.field(x)(targets), explainer(x, targets))


def test_vae_reconstruction_targets():
    torch.manual_seed(1)
    model = create("vae").eval().double()
    x = _x(2, 1, 32, 32)
    targets = [
        ac.ReconstructionError(),
        ac.ReconstructionError(box=(4, 4, 20, 20)),
        ac.ReconstructionError(mask=torch.rand(32, 32)),
        ac.Area(box=(2, 2, 9, 9)),
        ac.Pixel(5, 5),
        ac.Latent(3),
    ]
    for layer in ("encoder.relu3", "decoder.deconv1"):
        explainer = ac.GradCAM(model, layer, mode="backward")
        field = explainer.field(x)
        assert field.channels == field.activations.shape[1]
        # mu is computed before the decoder: the backward path refuses Latent there (no gradient reaches it)
        reached = targets if layer.startswith("encoder") else targets[:-1]
        assert_same(field(reached), explainer(x, reached))


def test_classifier_class_targets():
    torch.manual_seed(2)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval().double()
    x = _x(2, 3, 32, 32)
    explainer = ac.GradCAM(model, "layer3", mode="backward")
    targets = [ac.Class(), ac.Class(7), ac.Class([1, 2])]
    assert_same(explainer.field(x)(targets), explainer(x, targets))


def test_chunked_products_and_model_left_as_found(unet):
    """A small budget runs a few channels per product: same numbers; no hook, flag or .grad left."""
    model, x = unet
    model.train()
    layer = model.decoder.blocks[4]  # 16 channels
    explainer = ac.GradCAM(model, layer, mode="backward")
    targets = [ac.Area(box=(0, 0, 16, 16), channel=0), ac.Segment(1)]
    one = explainer.field(x[:1], max_memory=3_000_000)(targets)
    assert_same(one, explainer.field(x[:1])(targets))
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    model.eval()
    with pytest.raises(ValueError, match="max_memory"):
        explainer.field(x, max_memory=-5)


def test_auto_picks_the_path_by_the_recorded_break_even(unet, monkeypatch):
    model, x = unet
    layer = "decoder.blocks.4"  # 16 channels
    assert break_even(16) == max(1, -(-16 * field_module.JVP_VJP_COST // 1))
    monkeypatch.setattr(field_module, "JVP_VJP_COST", 0.125)  # break-even 2 targets at 16 channels
    assert break_even(16) == 2
    assert [choose_mode("auto", k, 16) for k in (1, 2, 3)] == ["backward", "backward", "field"]
    assert choose_mode("field", 1, 512) == "field" and choose_mode("backward", 10**6, 1) == "backward"
    with pytest.raises(ValueError, match="mode must be one of"):
        choose_mode("fast", 3, 16)

    used = []
    real_call = field_module.Field.__call__
    monkeypatch.setattr(field_module.Field, "__call__", lambda self, t: used.append("field") or real_call(self, t))
    explainer = ac.GradCAM(model, layer)
    boxes = [ac.Area(box=(i, i, i + 8, i + 8), channel=1) for i in range(0, 24, 8)]
    reference = ac.GradCAM(model, layer, mode="backward")(x, boxes)
    assert_same(explainer(x, boxes[:2]), ac.GradCAM(model, layer, mode="backward")(x, boxes[:2]))
    assert used == []
    assert_same(explainer(x, boxes), reference)
    assert used == ["field"]
    ac.GradCAM(model, layer, mode="field")(x, boxes[:1])
    assert used == ["field", "field"]


def test_methods_without_a_field():
    model = create("vae").eval()
    for method in (ac.GradCAMPlusPlus, ac.HiResCAM, ac.LayerCAM):
        assert method(model, "encoder.relu3").mode == "backward"
        with pytest.raises(ValueError, match="per-position"):
            method(model, "encoder.relu3", mode="field")
        assert not hasattr(method(model, "encoder.relu3"), "field")  # a method without a field has no field()
    with pytest.raises(ValueError, match="mode must be one of"):
        ac.GradCAM(model, "encoder.relu3", mode="forward")


def test_score_without_seed_falls_back_or_raises(monkeypatch):
    monkeypatch.setattr(field_module, "JVP_VJP_COST", 1e-3)
    model = create("vae").eval().double()
    x = _x(2, 1, 32, 32)
    targets = [ac.Area(box=(0, 0, 8, 8)), ac.Score(lambda out: out[0].sum(dim=(1, 2, 3)))]
    reference = ac.GradCAM(model, "encoder.relu3", mode="backward")(x, targets)
    with pytest.warns(RuntimeWarning, match="Score.*has no seed.*pure=True"):
        got = ac.GradCAM(model, "encoder.relu3")(x, targets)
    assert_same(got, reference)
    with pytest.raises(FieldUnavailable, match="has no seed"):
        ac.GradCAM(model, "encoder.relu3", mode="field")(x, targets)
    with pytest.raises(FieldUnavailable, match="has no seed"):
        ac.GradCAM(model, "encoder.relu3").field(x)(targets)


class _NoForwardMode(torch.autograd.Function):
    """ReLU with a backward rule only: forward-mode products cannot pass it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.head(_NoForwardMode.apply(self.conv(x)))


def test_op_without_forward_mode_rule_falls_back():
    torch.manual_seed(3)
    model = _Custom().eval().double()
    x = _x(2, 1, 12, 12)
    targets = [ac.Area(box=(2, 2, 6, 6), channel=1), ac.Pixel(3, 4)]
    explainer = ac.GradCAM(model, "conv", mode="backward")
    with pytest.warns(RuntimeWarning, match="forward-mode"):
        field = explainer.field(x)
    assert field.fallback is not None
    assert_same(field(targets), explainer(x, targets))
    with pytest.raises(FieldUnavailable, match="forward-mode"):
        ac.GradCAM(model, "conv", mode="field")(x, targets)
    assert all(not m._forward_hooks for m in model.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same(ac.GradCAM(model, "conv")(x, targets), explainer(x, targets))  # 2 < break-even: no field


class _Tokens(nn.Module):
    """Conv features as (B, 1 + h*w, C) tokens with a class token, or channels last; then back to a map."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.stem = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.mix = nn.Identity()
        self.head = nn.Conv2d(6, 2, 3, padding=1)
        self.cls = nn.Parameter(torch.randn(1, 1, 6))

    def forward(self, x):
        f = torch.relu(self.stem(x))
        if self.kind == "tokens":
            t = torch.cat([self.cls.expand(len(x), -1, -1), f.flatten(2).transpose(1, 2)], dim=1)
            t = self.mix(t)
            f = t[:, 1:].transpose(1, 2).unflatten(2, f.shape[2:]) + t[:, :1].transpose(1, 2)[..., None]
        else:
            f = self.mix(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return nn.functional.interpolate(self.head(f), scale_factor=2.0)


@pytest.mark.parametrize("kind", ["tokens", "nhwc"])
def test_layers_read_through_a_layout(kind):
    torch.manual_seed(5)
    model = _Tokens(kind).eval().double()
    x = _x(2, 3, 16, 16)
    targets = [ac.Area(box=(2, 3, 9, 12), channel=1), ac.Pixel(4, 4), ac.Area(mask=torch.rand(16, 16))]
    explainer = ac.GradCAM(model, "mix", mode="backward", layout=kind)
    got, ref = explainer.field(x)(targets), explainer(x, targets)
    assert_same(got, ref)
    assert got.layout == ref.layout and got.layout.startswith(kind)


def test_xgradcam_field(unet):
    """XGrad-CAM's activation-weighted tangents give its weights too (U-Net boxes, VAE reconstruction)."""
    model, x = unet
    targets = [ac.Area(box=(8, 8, 24, 30), channel=1), ac.Pixel(3, 4), ac.Segment(2)]
    explainer = ac.XGradCAM(model, "decoder.blocks.3", mode="backward")
    assert_same(explainer.field(x)(targets), explainer(x, targets))
    vae = create("vae").eval().double()
    xv = _x(2, 1, 32, 32)
    explainer = ac.XGradCAM(vae, "encoder.relu3", mode="backward")
    targets = [ac.ReconstructionError(box=(4, 4, 20, 20)), ac.Latent(2)]
    assert_same(explainer.field(xv)(targets), explainer(xv, targets))
    assert ac.XGradCAM(vae, "encoder.relu3", mode="field").mode == "field"


def test_fields_doc_explains_every_blob_from_one_field():
    """docs/fields.md's components example runs as written; its per-blob maps equal the backward passes."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "fields.md").read_text()
    section = doc.split("## Every blob of a prediction", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace: dict = {"__name__": "fields_doc"}
    exec(compile(block, "fields.md", "exec"), namespace)
    blobs, cls, x = namespace["blobs"], namespace["cls"], namespace["x"]
    sizes = blobs.flatten(1).sum(1)
    assert len(blobs) >= 2 and bool((sizes[:-1] >= sizes[1:]).all()) and int(sizes.min()) >= 4
    assert int(blobs.sum(0).max()) == 1  # disjoint
    assert namespace["per_blob"].maps.shape == (1, len(blobs), 64, 64)
    # The same targets in float64: the field and the backward passes agree to one rounding (rule 2).
    unet = namespace["unet"].double()
    targets = [ac.Segment(cls, mask=m) for m in blobs]
    explainer = ac.GradCAM(unet, "decoder.blocks.3", layout="nchw", mode="backward")
    x64 = x[:1].double()
    assert_same(explainer.field(x64)(targets), explainer(x64, targets))
