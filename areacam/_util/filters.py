"""The Gaussian blur every part of areacam uses (LIME's hidden superpixels, the metrics' "blur" baseline,
the filter visualiser's regulariser): separable, each channel alone."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_blur"]


def gaussian_blur(images: Tensor, sigma: float, truncate: float = 3.0, padding: str = "replicate") -> Tensor:
    """Blur ``(B, C, H, W)`` or ``(C, H, W)`` images with a Gaussian of ``sigma`` pixels, each channel alone.

    The kernel spans ``radius = max(1, ceil(truncate * sigma))`` pixels on each side and is normalised
    to sum 1; the border is padded by ``padding`` (``"replicate"`` or ``"reflect"``). Computed in the
    images' dtype.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    single = images.dim() == 3
    batch = images[None] if single else images
    radius = max(1, math.ceil(truncate * sigma - 1e-9))
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float64)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(images.dtype)
    count, channels, height, width = batch.shape
    flat = batch.reshape(count * channels, 1, height, width)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode=padding), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode=padding), kernel.view(1, 1, -1, 1))
    out = flat.view(count, channels, height, width)
    return out[0] if single else out
