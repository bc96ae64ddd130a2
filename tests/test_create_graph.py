"""``create_graph=True``: maps that carry the graph to the parameters, equal to a hand-written double backward.

The models run in float64. areacam rounds ``raw`` to float32 once; the losses below weigh it with
weights that are exact float32 numbers, so the rounding's backward (a cast) changes nothing and the
parameter gradients differ from the reference only by the order of float64 evaluation (rule 2 of
tests/README.md: ``FLOAT64`` of each gradient's magnitude).
"""

from __future__ import annotations

import pytest
import torch
from _numerics import FLOAT64, assert_close
from torch import nn

import areacam as ac


def _net(batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(5))
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3)]
    return nn.Sequential(*layers).double()


def _exact_weights(*shape: int) -> torch.Tensor:
    """Random float64 weights that are exact float32 numbers."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)).float().double()


def _param_grads(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    """d loss / d each parameter (zeros for one the loss does not reach, e.g. the last bias)."""
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def test_gradcam_raw_carries_the_parameter_gradient_of_a_double_backward():
    model, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    weights = _exact_weights(2, 8, 8)
    expl = ac.GradCAM(model, "2", create_graph=True)(x, ac.Class(1))
    got = _param_grads(model, (expl.raw[:, 0].double() * weights).sum())

    captured = {}
    handle = model[2].register_forward_hook(lambda m, i, o: captured.setdefault("acts", o))
    try:
        score = model(x)[:, 1].sum()
    finally:
        handle.remove()
    acts = captured["acts"]
    (grads,) = torch.autograd.grad(score, acts, create_graph=True)
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1))
    expected = _param_grads(model, (cam * weights).sum())
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_close(g, e, FLOAT64 * e.abs().max(), f"gradient of parameter {k}")
    assert float(torch.stack([e.abs().max() for e in expected]).max()) > 0  # the comparison is not 0 == 0


def test_saliency_raw_carries_the_parameter_gradient_of_a_double_backward():
    model, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    weights = _exact_weights(2, 3, 8, 8)
    expl = ac.Saliency(model, create_graph=True)(x, ac.Class(2))
    got = _param_grads(model, (expl.raw[:, 0].double() * weights).sum())

    inputs = x.clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(model(inputs)[:, 2].sum(), inputs, create_graph=True)
    expected = _param_grads(model, (grads * weights).sum())  # Saliency's raw is the signed gradient
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_close(g, e, FLOAT64 * e.abs().max(), f"gradient of parameter {k}")


def test_without_the_flag_nothing_carries_a_graph():
    model, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    for expl in (ac.GradCAM(model, "2")(x, ac.Class(1)), ac.Saliency(model)(x, ac.Class(1))):
        assert not (expl.raw.requires_grad or expl.maps.requires_grad or expl.scores.requires_grad)


def test_a_call_with_the_graph_keeps_the_callers_mode_and_leaves_no_grad_or_buffer_change():
    model, x = _net(batch_norm=True), torch.rand(4, 3, 8, 8, dtype=torch.float64)
    model.train()
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    expl = ac.GradCAM(model, "2", create_graph=True)(x, ac.Class(0))
    assert model.training and all(p.grad is None for p in model.parameters())
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name
    expl.maps.sum().backward()  # the caller's own backward works (no in-place change of saved tensors)
    assert model[0].weight.grad is not None and float(model[0].weight.grad.abs().max()) > 0


@pytest.mark.parametrize(
    "make",
    [
        lambda m: ac.ScoreCAM(m, "2", create_graph=True),
        lambda m: ac.AblationCAM(m, "2", create_graph=True),
        lambda m: ac.EigenCAM(m, "2", create_graph=True),
        lambda m: ac.Occlusion(m, 4, 4, create_graph=True),
        lambda m: ac.Lime(m, create_graph=True),
        lambda m: ac.GradCAM(m, "2", mode="field", create_graph=True),
    ],
)
def test_methods_that_cannot_keep_a_graph_say_so(make):
    with pytest.raises(ValueError, match="create_graph=True"):
        make(_net())
