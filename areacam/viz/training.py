"""Pictures of training: how the explanation of the same samples changes across epochs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from areacam.viz.images import overlay, panel_grid, to_rgb

__all__ = ["across_epochs_figure"]


def _stack(values: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray, what: str) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().float().cpu().numpy()
    if isinstance(values, np.ndarray):
        return values.astype(np.float32)
    if not len(values):
        raise ValueError(f"across_epochs_figure needs at least one epoch of {what}")
    return np.stack([v.detach().float().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v) for v in values])


def across_epochs_figure(
    maps: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray,
    images: Tensor | np.ndarray | None = None,
    epochs: Sequence[int] | None = None,
    scores: Sequence[Tensor | np.ndarray] | Tensor | np.ndarray | None = None,
    target: int = 0,
    path: str | Path | None = None,
    colormap: str = "jet",
    alpha: float = 0.5,
    cell: float = 1.7,
):
    """How one target's map of the same samples changes during training: rows = samples, columns = epochs.

    ``maps``: ``E`` maps ``(B, K, H, W)`` in ``[0, 1]`` (a list, or one ``(E, B, K, H, W)`` array), e.g.
    :class:`areacam.callbacks.EpochMaps`'s ``maps``; ``images``: the ``(B, C, H, W)`` samples (a first
    column shows each; without them the maps are drawn alone); ``epochs``: the column labels (default
    ``0..E-1``); ``scores``: ``E`` ``(B, K)`` scores, written under each panel; ``target``: which of
    the ``K`` maps to draw. Saved as PNG to ``path`` if given; returns a ``matplotlib`` figure.
    """
    stacked = _stack(maps, "maps")
    if stacked.ndim != 5:
        raise ValueError(f"maps must be E maps of shape (B, K, H, W), got an array of shape {stacked.shape}")
    count, batch, targets = stacked.shape[:3]
    if not -targets <= target < targets:
        raise IndexError(f"target {target} is out of range for maps of {targets} target(s)")
    labels = list(range(count)) if epochs is None else [int(e) for e in epochs]
    if len(labels) != count:
        raise ValueError(f"got {len(labels)} epochs for {count} maps")
    values = None if scores is None else _stack(scores, "scores")
    if values is not None and values.shape[:3] != (count, batch, targets):
        raise ValueError(f"scores of shape {values.shape} do not fit maps of shape {stacked.shape}: expected (E, B, K)")
    rgb = None if images is None else to_rgb(images)
    if rgb is not None and rgb.shape[0] != batch:
        raise ValueError(f"got {rgb.shape[0]} images for maps of {batch} samples")
    rows: list[list[np.ndarray | None]] = []
    titles: list[list[str]] = []
    for b in range(batch):
        heat = stacked[:, b, target]
        panels = [heat[e] if rgb is None else overlay(rgb[b], heat[e], colormap, alpha) for e in range(count)]
        names = [
            f"epoch {labels[e]}" + ("" if values is None else f"\nscore {values[e, b, target]:.3g}")
            for e in range(count)
        ]
        rows.append(panels if rgb is None else [rgb[b], *panels])
        titles.append(names if rgb is None else ["input", *names])
    return panel_grid(rows, titles=titles, cell=cell, path=path)
