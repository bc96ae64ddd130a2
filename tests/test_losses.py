"""ac.losses: each loss equals its formula, and its gradient reaches the parameters as a hand-written
float64 double backward does.

The end-to-end tests run float64 models. areacam rounds ``raw``/``maps`` to float32 once; the references
round their float64 result the same way (``.float().double()``), so both losses see the same numbers and
their backward passes round the same upstream gradient to float32 at the same cast. What remains is the
order of float64 evaluation in the model's gradients: rule 2 of tests/README.md, ``FLOAT64`` of each
parameter gradient's magnitude.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _numerics import FLOAT64, assert_close, assert_identical
from torch import nn

import areacam as ac


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3),
    ).double()


def _masks(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(2)) > 0.5


def _param_grads(model: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    params = list(model.parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _assert_same_grads(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_close(g, e, FLOAT64 * e.abs().max(), f"gradient of parameter {k}")
    assert float(torch.stack([e.abs().max() for e in expected]).max()) > 0  # not 0 == 0


def _gradcam64(model: nn.Module, x: torch.Tensor, cls: int) -> torch.Tensor:
    """Hand-written Grad-CAM at layer "2" that keeps the graph: ``(B, h, w)`` float64."""
    captured = {}
    handle = model[2].register_forward_hook(lambda m, i, o: captured.setdefault("acts", o))
    try:
        score = model(x)[:, cls].sum()
    finally:
        handle.remove()
    acts = captured["acts"]
    (grads,) = torch.autograd.grad(score, acts, create_graph=True)
    return torch.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1))


def test_outside_mass_equals_its_formula_bit_for_bit():
    # Multiples of 1/8 below 2: every partial sum is exact in any order, so the formula's one division
    # is the only rounding on both sides.
    maps = torch.randint(0, 16, (3, 2, 5, 6), generator=torch.Generator().manual_seed(0)).double() / 8
    maps[1, 0] = 0  # an all-zero map has no mass outside
    masks = _masks(3, 5, 6)
    expected = torch.zeros(3, 2, dtype=torch.float64)
    for b in range(3):
        for k in range(2):
            total = float(maps[b, k].sum())
            outside = float(maps[b, k][~masks[b]].sum())
            expected[b, k] = outside / total if total else 0.0
    assert_identical(ac.losses.outside_mass(maps, masks), expected, "outside_mass")
    per_target = masks.unsqueeze(1).expand(3, 2, 5, 6)
    assert_identical(ac.losses.outside_mass(maps, per_target), expected, "outside_mass with (B, K, H, W) masks")
    inside = ac.losses.outside_mass(maps, torch.ones(3, 5, 6, dtype=torch.bool))
    assert_identical(inside, torch.zeros(3, 2, dtype=torch.float64), "a map wholly inside")


def test_outside_gradient_and_mask_error_equal_their_formulas():
    grads = torch.randint(-8, 8, (2, 3, 4, 5, 5), generator=torch.Generator().manual_seed(1)).double() / 4
    maps = torch.randint(0, 9, (2, 3, 5, 5), generator=torch.Generator().manual_seed(3)).double() / 8
    soft = torch.randint(0, 5, (2, 3, 5, 5), generator=torch.Generator().manual_seed(4)).double() / 4
    rrr = torch.zeros(2, 3, dtype=torch.float64)
    gain = torch.zeros(2, 3, dtype=torch.float64)
    for b in range(2):
        for k in range(3):
            rrr[b, k] = sum(float(((1 - soft[b, k]) * grads[b, k, c]).square().sum()) for c in range(4))
            gain[b, k] = float((maps[b, k] - soft[b, k]).square().sum()) / 25
    # Multiples of 1/64 and 1/16 summed: exact, and the mean's division by 25 is one rounding.
    assert_identical(ac.losses.outside_gradient(grads, soft), rrr, "outside_gradient")
    assert_identical(ac.losses.mask_error(maps, soft), gain, "mask_error")


def test_the_losses_are_differentiable_where_a_map_is_flat():
    maps = torch.zeros(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    masks = _masks(1, 4, 4)
    (grad,) = torch.autograd.grad(ac.losses.outside_mass(maps, masks).sum(), maps)
    assert torch.isfinite(grad).all()
    for loss in (ac.losses.outside_mass, ac.losses.mask_error):
        inputs = torch.rand(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda m, loss=loss: loss(m, masks.expand(2, 4, 4)), (inputs,))
    grads = torch.randn(2, 2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g: ac.losses.outside_gradient(g, masks.expand(2, 4, 4)), (grads,))


def test_outside_mass_of_gradcam_raw_reaches_the_parameters_as_a_double_backward():
    model, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    masks = _masks(2, 4, 4)  # at the layer's size: the loss reads raw
    expl = ac.GradCAM(model, "2", create_graph=True)(x, ac.Class(1))
    got = _param_grads(model, ac.losses.outside_mass(expl.raw.double(), masks).sum())
    cam = _gradcam64(model, x, 1).float().double().unsqueeze(1)
    mass = (cam * ~masks.unsqueeze(1)).flatten(2).sum(2) / cam.flatten(2).sum(2)
    _assert_same_grads(got, _param_grads(model, mass.sum()))


def test_mask_error_of_gradcam_maps_reaches_the_parameters_as_a_double_backward():
    model, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    masks = _masks(2, 8, 8)
    expl = ac.GradCAM(model, "2", create_graph=True)(x, ac.Class(0))
    got = _param_grads(model, ac.losses.mask_error(expl.maps.double(), masks).sum())
    cam = F.interpolate(_gradcam64(model, x, 0).unsqueeze(1), size=(8, 8), mode="bilinear", align_corners=False)
    low, high = cam.amin(dim=(2, 3), keepdim=True), cam.amax(dim=(2, 3), keepdim=True)
    maps = ((cam - low) / (high - low)).float().double()
    expected = (maps - masks.unsqueeze(1).double()).square().mean(dim=(2, 3))
    _assert_same_grads(got, _param_grads(model, expected.sum()))


def test_outside_gradient_of_saliency_reaches_the_parameters_as_a_double_backward():
    model, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    masks = _masks(2, 8, 8)
    log_probs = ac.Score(lambda logits: logits.log_softmax(1).sum(1))  # Ross et al.'s gradient
    expl = ac.Saliency(model, create_graph=True)(x, log_probs)
    got = _param_grads(model, ac.losses.outside_gradient(expl.raw.double(), masks).sum())
    inputs = x.clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(model(inputs).log_softmax(1).sum(), inputs, create_graph=True)
    penalty = (~masks.unsqueeze(1) * grads.float().double()).square().sum()
    _assert_same_grads(got, _param_grads(model, penalty))


@pytest.mark.parametrize("loss", [ac.losses.outside_mass, ac.losses.mask_error])
def test_masks_of_the_wrong_shape_name_both_shapes(loss):
    maps = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"masks of shape \(2, 4, 4\).*maps of shape \(2, 3, 8, 8\)"):
        loss(maps, torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(3, 8, 8\).*expected \(2, 8, 8\).*or \(2, 3, 8, 8\)"):
        loss(maps, torch.ones(3, 8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[0, 1\], got values in \[-1.0, 1.0\]"):
        loss(maps, torch.ones(2, 8, 8) - 2 * torch.eye(8))
    with pytest.raises(TypeError, match="bool or float"):
        loss(maps, torch.ones(2, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"maps must be a float tensor \(B, K, \*spatial\), got \(8, 8\)"):
        loss(torch.rand(8, 8), torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"gradients of shape \(2, 3, 1, 8, 8\)"):
        ac.losses.outside_gradient(maps.unsqueeze(2), torch.ones(2, 4, 4, dtype=torch.bool))


def test_outside_mass_refuses_signed_maps():
    with pytest.raises(ValueError, match="non-negative maps"):
        ac.losses.outside_mass(torch.randn(2, 1, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool))


def test_attention_mining_equals_gains_formula_and_reaches_maps_and_parameters():
    """L_am = s(x - sigmoid(omega (A - sigma)) x): the class probability of the erased image (float64)."""
    model = _net()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    maps = torch.rand(2, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    maps.requires_grad_(True)
    targets = [ac.Score(lambda logits: logits.softmax(1)[:, 1]), ac.Class()]
    got = ac.losses.attention_mining(model, x, maps, targets, sigma=0.5, omega=10.0)
    argmax = model(x).argmax(1)  # Class() is frozen at the unperturbed output
    expected = torch.empty(2, 2, dtype=torch.float64)
    for k in range(2):
        erased = x - torch.sigmoid(10.0 * (maps[:, k : k + 1] - 0.5)) * x
        logits = model(erased)
        expected[:, k] = logits.softmax(1)[:, 1] if k == 0 else logits[torch.arange(2), argmax]
    # Not bit for bit: the loss erases the K images in one (B, K) broadcast and the portable kernels
    # (ATEN_CPU_CAPABILITY=default) order that product's float64 rounding differently from the loop here.
    assert_close(got, expected, FLOAT64 * expected.abs().max(), "attention mining")
    (grad_maps,) = torch.autograd.grad(got.sum(), maps, retain_graph=True)
    (ref_maps,) = torch.autograd.grad(expected.sum(), maps, retain_graph=True)
    assert_close(grad_maps, ref_maps, FLOAT64 * ref_maps.abs().max(), "gradient in the maps")
    assert float(grad_maps.abs().max()) > 0
    _assert_same_grads(_param_grads(model, got.sum()), _param_grads(model, expected.sum()))


def test_attention_mining_refuses_maps_that_do_not_fit():
    model, x = _net(), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"maps of shape \(2, 1, 4, 4\) do not fit x of shape \(2, 3, 8, 8\)"):
        ac.losses.attention_mining(model, x, torch.rand(2, 1, 4, 4, dtype=torch.float64), ac.Class(0))
    with pytest.raises(ValueError, match="maps hold 2 targets but 1 targets were given"):
        ac.losses.attention_mining(model, x, torch.rand(2, 2, 8, 8, dtype=torch.float64), ac.Class(0))
    with pytest.raises(ValueError, match="omega must be > 0"):
        ac.losses.attention_mining(model, x, torch.rand(2, 1, 8, 8, dtype=torch.float64), ac.Class(0), omega=0)
