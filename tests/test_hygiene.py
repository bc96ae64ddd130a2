"""Calls leave the model as they found it: hooks, flags, .grad, buffers, the graph."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from torch import nn

import areacam as ac
from areacam.layers import resolve_layer
from areacam.methods.registry import METHODS, Method

#: Every registered method, built as the command line builds it (one registration drives this list).
EXPLAINERS = list(METHODS.values())


def _build(method: Method, model: nn.Module) -> object:
    layer = resolve_layer(model, "layer3") if method.needs_layer else None
    return method.build(model, layer, (64, 64))


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def _snapshot(model: nn.Module) -> dict:
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "inplace": [getattr(m, "inplace", None) for m in model.modules()],
        "buffers": [b.clone() for b in model.buffers()],
        "attributes": [sorted(vars(m)) for m in model.modules()],  # e.g. a shadowed forward left behind
    }


@pytest.fixture
def mixed_resnet(resnet):
    """A ResNet left in train mode with one BatchNorm frozen in eval and the stem frozen."""
    resnet.train()
    resnet.layer1[0].bn1.eval()
    for p in resnet.conv1.parameters():
        p.requires_grad_(False)
    return resnet


@pytest.mark.parametrize("method", EXPLAINERS, ids=[m.name for m in EXPLAINERS])
def test_call_leaves_model_untouched(mixed_resnet, images, method):
    before = _snapshot(mixed_resnet)
    with torch.no_grad():  # gradients must be enabled inside the call anyway
        expl = _build(method, mixed_resnet)(images, [ac.Class(1), ac.Class()])
    after = _snapshot(mixed_resnet)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    assert after["inplace"] == before["inplace"]
    assert after["attributes"] == before["attributes"]
    for b0, b1 in zip(before["buffers"], after["buffers"], strict=True):
        assert torch.equal(b0, b1)
    assert all(p.grad is None for p in mixed_resnet.parameters())
    assert _hook_count(mixed_resnet) == 0
    assert torch.isfinite(expl.maps).all() and not expl.maps.requires_grad


def test_train_mode_model_is_explained_in_eval_mode(mixed_resnet, images):
    train_mode = ac.GradCAM(mixed_resnet, "layer4")(images, ac.Class(2))
    mixed_resnet.eval()
    eval_mode = ac.GradCAM(mixed_resnet, "layer4")(images, ac.Class(2))
    assert torch.equal(train_mode.raw, eval_mode.raw)  # explained in eval mode either way: the same pass


class Exploding(nn.Module):
    """Raises after the explained layer has run."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        self.relu(self.conv(x))
        raise RuntimeError("boom from the model")


class ExplodingLater(nn.Module):
    """Runs normally once, then raises: the failure hits the perturbed (or interpolated) passes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        h = self.relu(self.conv(x))
        if self.calls > 1:
            raise RuntimeError("boom from the model")
        return self.fc(h.mean(dim=(2, 3)))


SINGLE_PASS = [
    lambda m: ac.GradCAM(m, "conv"),
    ac.Saliency,
    ac.GuidedBackprop,
    lambda m: ac.XGradCAM(m, "conv"),
    lambda m: ac.EigenCAM(m, "conv"),
]
MANY_PASSES = [
    lambda m: ac.ScoreCAM(m, "conv"),
    lambda m: ac.AblationCAM(m, "conv"),
    ac.IntegratedGradients,
    lambda m: ac.Occlusion(m, 4, 4),
]


@pytest.mark.parametrize(
    ("make", "model_class"),
    [(make, Exploding) for make in SINGLE_PASS + MANY_PASSES] + [(make, ExplodingLater) for make in MANY_PASSES],
)
def test_model_raising_midcall_propagates_and_cleans_up(make, model_class):
    model = model_class().train()
    attributes = [sorted(vars(m)) for m in model.modules()]
    explainer = make(model)
    with pytest.raises(RuntimeError, match="boom from the model"):
        explainer(torch.rand(1, 3, 8, 8), ac.Class(0))
    assert _hook_count(model) == 0
    assert [sorted(vars(m)) for m in model.modules()] == attributes
    assert model.training and model.conv.training
    assert torch.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


def test_no_graph_kept_alive_between_calls(resnet, images):
    outputs = []
    handle = resnet.fc.register_forward_hook(lambda m, i, o: outputs.append(weakref.ref(o)))
    try:
        explainer = ac.GradCAM(resnet, "layer4")
        expl = explainer(images, ac.Class(0))
        gradients = ac.Saliency(resnet)(images, ac.Class(0))
    finally:
        handle.remove()
    gc.collect()
    assert len(outputs) == 2 and all(ref() is None for ref in outputs)
    for field in (expl.maps, expl.raw, expl.scores, gradients.raw):
        assert field.grad_fn is None and not field.requires_grad


def test_grad_mode_restored_after_call(resnet, images):
    with torch.no_grad():
        ac.GradCAM(resnet, "layer4")(images, ac.Class(0))
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("make", [lambda m: ac.GradCAM(m, "layer4"), ac.Saliency, ac.GuidedBackprop])
def test_inference_mode_caller_gets_the_same_explanation(resnet, images, make):
    # regression: under torch.inference_mode() the call failed with "receives no gradient"
    expected = make(resnet)(images, ac.Class(3))
    with torch.inference_mode():
        frozen = images.clone()
        got = make(resnet)(frozen, ac.Class(3))
        assert torch.is_inference_mode_enabled()
    assert torch.equal(got.raw, expected.raw)  # the same computation on a normal copy of the input


def test_inplace_relu_after_layer_does_not_corrupt_activation():
    torch.manual_seed(0)
    inplace = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.LazyLinear(4))
    inplace(torch.rand(1, 3, 8, 8))
    plain = nn.Sequential(inplace[0], nn.ReLU(inplace=False), nn.Flatten(), inplace[3]).eval()
    inplace.eval()
    x = torch.rand(2, 3, 8, 8)
    ours = ac.HiResCAM(inplace, "0")(x, ac.Class(1))
    ref = ac.HiResCAM(plain, "0")(x, ac.Class(1))
    assert torch.equal(ours.raw, ref.raw)  # an in-place ReLU computes the same values as an out-of-place one
    # HiResCAM at the conv: sum_c grad * pre-ReLU activation, which can be negative before the ReLU
    with torch.no_grad():
        acts = inplace[0](x)
    assert (acts < 0).any()


def test_reduced_precision_model_gives_float32_maps(autoencoder):
    model = autoencoder.to(torch.bfloat16)
    x = torch.rand(1, 3, 32, 32).to(torch.bfloat16)
    expl = ac.GradCAM(model, "encoder.3")(x, ac.Area(box=(0, 0, 16, 16)))
    assert expl.maps.dtype == torch.float32 and expl.raw.dtype == torch.float32
    assert torch.isfinite(expl.maps).all()
