"""Checks of what the caller passes in: the input batch and an explainer's baseline."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from areacam.core.state import model_device_dtype

__all__ = ["SPATIAL_SHAPES", "as_baseline", "check_input", "conv_dims"]


SPATIAL_SHAPES = {1: "(B, C, L)", 2: "(B, C, H, W)", 3: "(B, C, D, H, W)"}


def conv_dims(model: nn.Module) -> int | None:
    """The number of spatial dims every convolution of ``model`` has, or ``None`` (none, or mixed)."""
    dims = {len(m.kernel_size) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)}
    return dims.pop() if len(dims) == 1 else None


def _check_conv_dims(model: nn.Module, x: Tensor) -> None:
    """``ValueError`` when every convolution of ``model`` has another number of spatial dims than ``x``."""
    n = conv_dims(model)
    if n is not None and n != x.dim() - 2 and n in SPATIAL_SHAPES:
        raise ValueError(
            f"x must be {n + 2}-D {SPATIAL_SHAPES[n]} for {type(model).__name__}, whose convolutions are "
            f"{n}-D, got shape {tuple(x.shape)}"
        )


def check_input(model: nn.Module, x: object, spatial: tuple[int, ...] = (1, 2, 3), method: str | None = None) -> Tensor:
    """Check that ``x`` is a finite float ``(B, C, *spatial)`` tensor on the model's device and dtype.

    ``spatial`` lists the accepted numbers of spatial dims (1: signals ``(B, C, L)``, 2: images
    ``(B, C, H, W)``, 3: volumes ``(B, C, D, H, W)``); a tensor subclass such as MONAI's ``MetaTensor``
    is read as the plain tensor it holds (its metadata is not carried into the maps); ``method`` names
    the caller in the error of a method that draws only some of them. Returns ``x``, or a normal copy
    of it when it was made under ``torch.inference_mode()`` (such a tensor cannot enter an autograd graph).
    """
    shapes = " or ".join(SPATIAL_SHAPES[n] for n in spatial)
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape {shapes}, got {type(x).__name__}")
    if type(x) is not Tensor:  # a subclass (MONAI's MetaTensor): explained as the plain tensor it holds
        x = x.as_subclass(Tensor)
    if x.dim() - 2 not in spatial:
        if method is not None and x.dim() - 2 in SPATIAL_SHAPES:
            raise ValueError(
                f"{method} works on {shapes} inputs only, got a {x.dim() - 2}-D input of shape {tuple(x.shape)}"
            )
        raise ValueError(f"x must be {shapes}, got shape {tuple(x.shape)}")
    _check_conv_dims(model, x)
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor, got {x.dtype}; e.g. x.float() / 255 for images")
    if x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(f"x is empty: shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf")
    device, dtype = model_device_dtype(model)
    if device is not None and x.device != device:
        raise ValueError(f"x is on {x.device} but the model is on {device}; move x with x.to({str(device)!r})")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"x is {x.dtype} but the model's parameters are {dtype}; pass x.to({dtype})")
    if x.is_inference():
        with torch.inference_mode(False):
            return x.clone()
    return x


def as_baseline(baseline: object, x: Tensor) -> Tensor:
    """``baseline`` as a tensor shaped like ``x``, with captum's rules.

    A number fills every value; a tensor must have ``x``'s shape ``(B, C, ...)`` or ``(1, C, ...)``
    (one baseline for every sample). ``None`` means 0. The result is on ``x``'s device and dtype.
    """
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline}")
        return torch.full_like(x, float(baseline))
    if not isinstance(baseline, Tensor):
        raise TypeError(f"baseline must be None, a number or a tensor, got {type(baseline).__name__}")
    if baseline.shape != x.shape and baseline.shape != (1, *x.shape[1:]):
        raise ValueError(
            f"baseline of shape {tuple(baseline.shape)} does not fit x of shape {tuple(x.shape)}: expected "
            f"{tuple(x.shape)} or {(1, *x.shape[1:])}"
        )
    if not torch.isfinite(baseline).all():
        raise ValueError("baseline contains NaN or inf")
    return baseline.detach().to(device=x.device, dtype=x.dtype).expand_as(x)
