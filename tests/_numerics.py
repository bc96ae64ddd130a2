"""The tolerances of the numeric tests, derived from floating-point arithmetic (see tests/README.md).

No tolerance in the suite is a number that happened to pass: each comes from one of the bounds here.

- Same computation (two routes through areacam that run the same ops on the same shapes):
  :func:`assert_identical`, bit for bit. ATen's CPU kernels are deterministic for given shapes and
  thread count, whatever instruction set they use.
- A float64 reference: run the model in float64. areacam then computes in float64 and rounds its
  result to float32 once (:func:`areacam.explanation.working_dtype`), so the result differs from the
  reference by that rounding, ``U32`` relative, plus the float64 error of two different orders of
  evaluation, :data:`FLOAT64` of the map's magnitude. :func:`rounded` and :func:`maps_allowed`.
- float32 on both sides with different op orders: :func:`reduction` per reduction of ``n`` terms,
  relative to the magnitude of the terms (Higham and Mary's probabilistic bound).
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

#: Unit roundoff of float32 and float64: ``|fl(x) - x| <= u |x|``.
U32 = 2.0**-24
U64 = 2.0**-53

#: Higham & Mary (2019, "A new approach to probabilistic rounding error analysis"): the rounding error of
#: a reduction of ``n`` terms is at most ``LAMBDA * sqrt(n) * u`` times the sum of the terms' magnitudes
#: with probability at least ``1 - 2 exp(-LAMBDA**2 / 2)``, ``1 - 5e-11`` for 7: safe over every value the
#: suite compares.
LAMBDA = 7.0


def reduction(terms: int, u: float = U32) -> float:
    """Relative error bound of one reduction (a sum, a dot product, a mean) of ``terms`` terms."""
    return LAMBDA * math.sqrt(terms) * u


#: Budget of a float64 computation relative to the largest magnitude of the compared slice: a chain of
#: reductions of up to 1e8 terms in all (``reduction(1e8, U64)`` = 7.8e-12) with cancellation up to 1e3.
#: Below one float32 rounding, so float64 references cost the float32 results nothing.
FLOAT64 = reduction(10**8, U64) * 1e3

#: pytorch-grad-cam's ``scale_cam_image`` divides by ``max + 1e-7`` (after subtracting the min), at the
#: layer's size and again at the input's size: a relative difference of ``1e-7 / span`` each time.
PGC_EPS = 1e-7


def _per_slice_max(values: Tensor, leading: int) -> Tensor:
    """``max |values|`` over every dim after the first ``leading``, broadcastable to ``values``."""
    if values.dim() <= leading:
        return values.abs()
    flat = values.abs().flatten(leading).amax(dim=leading)
    return flat.view(*flat.shape, *(1,) * (values.dim() - leading))


def _span(values: Tensor, leading: int) -> Tensor:
    flat = values.flatten(leading)
    span = flat.amax(dim=leading) - flat.amin(dim=leading)
    return span.view(*span.shape, *(1,) * (values.dim() - leading))


def assert_close(actual: Tensor, expected: Tensor, allowed: Tensor | float, what: str = "values") -> None:
    """``|actual - expected| <= allowed`` elementwise (``allowed`` broadcast), in float64."""
    actual, expected = torch.as_tensor(actual), torch.as_tensor(expected)
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    error = (actual.double() - expected.double().to(actual.device)).abs()
    allowed = torch.as_tensor(allowed, dtype=torch.float64).to(error.device).expand_as(error)
    bad = error > allowed
    _report(what, error, allowed)
    if bad.any():
        index = tuple(bad.nonzero()[0].tolist())
        ratio = float((error / allowed.clamp(min=1e-300)).max())
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {error.numel()} differ beyond the bound (worst {ratio:.3g}x it); first "
            f"at {index}: {float(actual[index])!r} vs {float(expected[index])!r}, allowed {float(allowed[index]):.3g}"
        )


def _report(what: str, error: Tensor, allowed: Tensor) -> None:
    """With ``AREACAM_TOLERANCE_REPORT=FILE``, append the worst error/bound ratio of each comparison to FILE."""
    path = os.environ.get("AREACAM_TOLERANCE_REPORT")
    if path:
        ratio = float((error / allowed.clamp(min=1e-300)).max()) if error.numel() else 0.0
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a") as f:
            f.write(f"{ratio:.3e}\t{test}\t{what}\n")


def assert_identical(actual: Tensor, expected: Tensor, what: str = "values") -> None:
    """Bit-for-bit equality: the same ops on the same shapes."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if not torch.equal(actual, expected):
        error = (actual.double() - expected.double()).abs()
        raise AssertionError(f"{what}: not the same computation, max difference {float(error.max()):.3g}")


def rounded(expected: Tensor, leading: int = 2, roundings: int = 2) -> Tensor:
    """Allowed difference of a float32 result from a float64 ``expected``: ``roundings`` float32 roundings
    of each value (areacam's result; a peer's own float32 output) plus :data:`FLOAT64` of each slice's
    largest magnitude (slices: the dims after the first ``leading``, e.g. one map of ``(B, K, H, W)``)."""
    expected = expected.double()
    return roundings * U32 * expected.abs() + FLOAT64 * _per_slice_max(expected, leading)


def maps_allowed(
    raw: Tensor, size: tuple[int, ...] | None = None, *, raw_error: float = FLOAT64, pgc: bool = False
) -> Tensor:
    """Allowed difference of ``(B, K, *s)`` maps in ``[0, 1]`` from a reference, per map.

    The maps are ``(up - min) / span`` of the upsampled ``raw``. An error ``e`` of ``up`` moves a map
    value by at most ``4 e / span``, with ``e`` = ``raw_error`` (default :data:`FLOAT64`: a float64
    reference) of the map's largest magnitude; then one float32 rounding on each side. ``pgc=True`` adds
    pytorch-grad-cam's two ``1e-7`` epsilons (:data:`PGC_EPS`) and its float32 bilinear resize.
    """
    raw = raw.double()
    up = (
        raw
        if size is None
        else torch.nn.functional.interpolate(
            raw, size=size, mode={1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)], align_corners=False
        )
    )
    span = _span(up, 2).clamp(min=1e-300)
    allowed = 2 * U32 + 4 * raw_error * _per_slice_max(up, 2) / span
    if pgc:
        allowed = allowed + PGC_EPS / _span(raw, 2).clamp(min=1e-300) + PGC_EPS + 8 * U32
    return allowed


def ig_magnitude(model, x: Tensor, baseline, target, steps: int, method: str) -> Tensor:
    """``|x - b| * sum_i w_i |grad f(b + a_i (x - b))|``: the magnitude of the terms of each Integrated
    Gradients attribution. captum multiplies the gradients by ``torch.tensor(step_sizes).float()``: its
    float32 quadrature weights move an attribution by up to ``U32`` of this."""
    import areacam as ac

    weights, nodes = ac.methods.integrated.quadrature(method, steps)
    baseline = torch.as_tensor(baseline, dtype=x.dtype).expand_as(x)
    total = torch.zeros_like(x)
    for weight, node in zip(weights, nodes):
        total += weight * ac.Saliency(model)(baseline + node * (x - baseline), target).raw[:, 0].double().abs()
    return (x - baseline).abs() * total


#: Unit roundoff of float16 (the region explorers' pages store the field and the activations as float16),
#: and half the spacing of its subnormals (the absolute error of a value below 2**-14 of its plane's scale).
U16 = 2.0**-11
F16_SUBNORMAL = 2.0**-25


def float16_allowed(field, box: tuple[int, ...], channel: int | None) -> float:
    """How far an explorer page's map of ``Area(box, channel)`` may be from the library's (images and volumes).

    The page stores each field value ``F`` and activation ``A`` as float16 after dividing its plane by the
    plane's scale ``s``: off by ``U16 |v| + F16_SUBNORMAL s``. A channel weight ``w_c = sum_box F_c`` is then
    off by ``e_c = U16 sum_box |F_c| + n F16_SUBNORMAL s_F`` (``n`` box voxels) and the raw map
    ``sum_c w_c A_c`` by ``sum_c (e_c |A_c| + |w_c| (U16 |A_c| + F16_SUBNORMAL s_A))`` (to first order);
    resizing is a convex combination, and min-max normalisation moves a map value by at most ``4 / span``
    of that; then a few float32 roundings of the library's own map.
    """
    dims = len(box) // 2
    planes = field.derivatives[0][0].double()  # (C, Co, *S)
    planes = planes[:, channel] if channel is not None else planes.sum(dim=1)
    # the page scales each (c, o) plane; with channel=None it sums Co planes of up to their own scales
    scales = field.derivatives[0][0].double().abs().flatten(2).amax(dim=2)  # (C, Co)
    scale_f = scales[:, channel] if channel is not None else scales.sum(dim=1)
    inside = planes[(slice(None), *(slice(box[i], box[dims + i]) for i in range(dims)))]
    voxels = inside[0].numel()
    weights = inside.flatten(1).sum(dim=1)
    weight_error = U16 * inside.abs().flatten(1).sum(dim=1) + voxels * F16_SUBNORMAL * scale_f
    acts = field.activations[0].double()  # (C, *s)
    scale_a = acts.abs().flatten(1).amax(dim=1)
    act_error = U16 * acts.abs() + F16_SUBNORMAL * scale_a.view(-1, *(1,) * dims)
    shape = (-1, *(1,) * dims)
    raw = torch.relu((weights.view(shape) * acts).sum(dim=0))
    bound = (weight_error.view(shape) * acts.abs() + weights.abs().view(shape) * act_error).sum(dim=0)
    size = tuple(field.x.shape[2:])
    mode = {2: "bilinear", 3: "trilinear"}[dims]
    up = torch.nn.functional.interpolate(raw[None, None], size=size, mode=mode, align_corners=False)
    return float(4 * bound.max() / (up.max() - up.min()) + 8 * U32)
