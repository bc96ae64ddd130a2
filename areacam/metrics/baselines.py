"""What replaces removed pixels in the perturbation metrics: blur, mean, zero or noisy linear imputation."""

from __future__ import annotations

import torch
from torch import Tensor

from areacam._util.filters import gaussian_blur
from areacam.metrics.imputation import noisy_linear_impute

__all__ = ["BASELINES", "blur", "check_removal_baseline", "fill_image"]

#: Named baselines; a float (a constant colour) or a ``(C, H, W)`` / ``(B, C, H, W)`` tensor work too.
BASELINES = ("blur", "mean", "zero", "noisy_linear")

Baseline = str | float | Tensor


def blur(x: Tensor, sigma: float | None = None) -> Tensor:
    """Gaussian blur of ``(B, C, H, W)`` images, each channel alone, edges replicated.

    ``sigma`` defaults to ``max(H, W) / 32`` pixels (7 px at 224, as the 5 px / 11 px kernel that
    RISE's insertion metric uses), at least 1.
    """
    return gaussian_blur(x, sigma or max(1.0, max(x.shape[-2:]) / 32))


def check_removal_baseline(baseline: Baseline, x: Tensor) -> None:
    """``ValueError``/``TypeError`` for a baseline that is not one of :data:`BASELINES`, a float or a fitting tensor."""
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; choose from {BASELINES}, a float or a tensor")
    elif isinstance(baseline, Tensor):
        if baseline.shape not in (x.shape, x.shape[1:]):
            raise ValueError(
                f"baseline tensor of shape {tuple(baseline.shape)} does not fit x of shape {tuple(x.shape)}: "
                f"expected {tuple(x.shape)} or {tuple(x.shape[1:])}"
            )
        if not torch.isfinite(baseline).all():
            raise ValueError("baseline tensor contains NaN or inf")
    elif isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
        raise TypeError(f"baseline must be one of {BASELINES}, a float or a tensor, got {baseline!r}")


def fill_image(baseline: Baseline, x: Tensor) -> Tensor | None:
    """The ``(B, C, H, W)`` image every removed pixel falls back to (``None`` for ``"noisy_linear"``,
    whose fill depends on which pixels are removed)."""
    if baseline == "noisy_linear":
        return None
    if baseline == "blur":
        return blur(x)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if baseline == "zero":
        return torch.zeros_like(x)
    if isinstance(baseline, Tensor):
        return baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
    return torch.full_like(x, float(baseline))


def impute_rows(x: Tensor, samples: Tensor, keep: Tensor, noise: float, generator: torch.Generator | None) -> Tensor:
    """Noisy linear imputation of each row: ``x[samples[i]]`` with the pixels outside ``keep[i]`` filled."""
    rows = [noisy_linear_impute(x[b], kept, noise, generator) for b, kept in zip(samples.tolist(), keep.cpu())]
    return torch.stack(rows).to(device=x.device, dtype=x.dtype)
