"""The result of an explainer call, and the map normalisation every explainer shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["Explanation", "normalize_maps", "upsample", "working_dtype"]

# A map whose range is below this fraction of its magnitude is constant up to rounding.
_FLAT = 1e-6


_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a result is computed in before its one final rounding to float32.

    A float64 model keeps float64 up to the result (so a float64 reference differs from the result by
    one float32 rounding); every other dtype (float32, float16, bfloat16) computes in float32.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def upsample(raw: Tensor, size: tuple[int, ...]) -> Tensor:
    """Resize ``(B, K, *spatial)`` maps to ``size``: linear, bilinear or trilinear (``align_corners=False``)."""
    size = tuple(size)
    if tuple(raw.shape[2:]) == size:
        return raw
    if raw.dim() - 2 != len(size) or len(size) not in _MODES:
        raise ValueError(f"cannot resize maps of shape {tuple(raw.shape)} to {size}: the spatial dims differ")
    return F.interpolate(raw, size=size, mode=_MODES[len(size)], align_corners=False)


def normalize_maps(maps: Tensor) -> tuple[Tensor, Tensor]:
    """Min-max normalise each ``(*spatial)`` map of ``(B, K, *spatial)`` to ``[0, 1]``.

    Returns ``(maps, degenerate)``: a constant map (range 0, or below 1e-6 of its magnitude) is all
    zeros and flagged ``True`` in the ``(B, K)`` bool tensor. Differentiable where ``maps`` carries a
    graph (``create_graph=True``): the gradient flows through the minimum, maximum and division.
    """
    flat = maps.flatten(2)
    low = flat.amin(dim=2, keepdim=True)
    high = flat.amax(dim=2, keepdim=True)
    span = high - low
    scale = torch.maximum(high.abs(), low.abs())
    degenerate = (span <= _FLAT * scale) | ~torch.isfinite(span)
    normalized = torch.where(degenerate, torch.zeros_like(flat), (flat - low) / torch.where(degenerate, 1, span))
    normalized = normalized.view_as(maps)
    clamped = normalized.clamp(0, 1) if normalized.requires_grad else normalized.clamp_(0, 1)  # keeps a graph
    return clamped, degenerate.squeeze(2)


@dataclass
class Explanation:
    """What an explainer returns for ``B`` images and ``K`` targets.

    - ``maps``: ``(B, K, H, W)`` in ``[0, 1]`` at the input's size (``(B, K, *spatial)`` for
      signals ``(L,)`` and volumes ``(D, H, W)``).
    - ``raw``: CAMs ``(B, K, h, w)`` at the layer's size; gradient methods ``(B, K, C, H, W)``
      signed input gradients; Lime ``(B, K, S)`` signed segment weights (any spatial dims likewise).
    - ``scores``: ``(B, K)`` target scores of the explained forward pass.
    - ``degenerate``: ``(B, K)`` bool, the map is constant and carries no information.
    - ``segments``: Lime only, ``(B, H, W)`` superpixel labels.
    - ``targets``: the targets, in column order (used for figure titles).
    - ``layout``: layer-based methods: how the layer's output was read, e.g. ``"nchw"``,
      ``"nhwc"``, ``"tokens(prefix=1, grid=14x14)"``, or ``"nchw (from up_blocks.0.upsamplers.0.conv)"`` for
      a tied shape settled by the layer's autograd graph; ``None`` for the others.
    - ``delta``: IntegratedGradients only, ``(B, K)`` convergence delta: the sum of ``raw`` minus
      the score difference between the input and the baseline (captum's definition).
    """

    maps: Tensor
    raw: Tensor
    scores: Tensor
    degenerate: Tensor
    segments: Tensor | None = None
    targets: list = field(default_factory=list)
    layout: str | None = None
    delta: Tensor | None = None

    def __len__(self) -> int:
        return self.maps.shape[0]

    def _check_2d(self, what: str) -> None:
        if self.maps.dim() != 4:
            raise ValueError(
                f"Explanation.{what} draws 2-D images, but the maps are {tuple(self.maps.shape)}; draw volumes "
                "with ac.volume_figure / ac.slice_grid and signals with ac.signal_figure"
            )

    def overlay(self, images: Tensor | np.ndarray, colormap: str = "jet", alpha: float = 0.5) -> np.ndarray:
        """Heatmaps over ``images`` ``(B, C, H, W)``: a ``(B, K, H, W, 3)`` uint8 RGB array."""
        from areacam.viz.images import overlay, to_rgb

        self._check_2d("overlay")
        rgb = to_rgb(images)
        if rgb.shape[0] != self.maps.shape[0]:  # checked here, so zip() below cannot truncate
            raise ValueError(f"got {rgb.shape[0]} images for an explanation of {self.maps.shape[0]}")
        maps = self.maps.detach().cpu().numpy()
        panels = [[overlay(img, m, colormap=colormap, alpha=alpha) for m in row] for img, row in zip(rgb, maps)]
        return np.stack([np.stack(row) for row in panels])

    def plot(
        self,
        images: Tensor | np.ndarray,
        path: str | Path | None = None,
        titles: list[str] | None = None,
        colormap: str = "jet",
        alpha: float = 0.5,
    ) -> Figure:
        """Grid figure, rows = images, columns = input then one overlay per target; saved if ``path``."""
        from areacam.viz.images import grid_figure

        self._check_2d("plot")
        if titles is None:
            titles = [repr(target) for target in self.targets] or [f"target {k}" for k in range(self.maps.shape[1])]
        return grid_figure(self.overlay(images, colormap=colormap, alpha=alpha), images, titles, path=path)
