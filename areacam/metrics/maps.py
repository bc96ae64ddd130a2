"""Checks and conversions shared by the metrics: maps, masks, boxes, explainers given for maps."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from areacam._util.checks import check_box
from areacam.core.explanation import Explanation, normalize_maps
from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.targets.base import Target

__all__ = ["as_maps", "as_masks", "boxes_to_masks", "flat_maps", "resolve_maps"]

MapsLike = Tensor | np.ndarray | Explanation


def as_maps(maps: MapsLike, name: str = "maps") -> Tensor:
    """``maps`` (a tensor, array or :class:`Explanation`) as a finite float ``(B, K, H, W)`` tensor."""
    if isinstance(maps, Explanation):
        maps = maps.maps
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(np.ascontiguousarray(maps))
    if not isinstance(maps, Tensor):
        raise TypeError(f"{name} must be a (B, K, H, W) tensor or an Explanation, got {type(maps).__name__}")
    if maps.dim() != 4:
        raise ValueError(f"{name} must be (B, K, H, W) (an Explanation's maps), got shape {tuple(maps.shape)}")
    if maps.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(maps.shape)}")
    maps = maps.detach()
    if not maps.is_floating_point():
        maps = maps.float()
    if not torch.isfinite(maps).all():
        bad = (~torch.isfinite(maps)).nonzero()[0].tolist()
        raise ValueError(f"{name} contains NaN or inf (first at sample {bad[0]}, target {bad[1]})")
    return maps


def flat_maps(maps: Tensor) -> Tensor:
    """``(B, K)`` bool: the map is constant (as :attr:`Explanation.degenerate` defines it)."""
    return normalize_maps(maps)[1]


def warn_flat(flat: Tensor, what: str) -> None:
    """Warn once that ``flat`` maps were scored as carrying no information."""
    if flat.any():
        where = [tuple(v) for v in flat.nonzero().tolist()[:4]]
        warnings.warn(
            f"{int(flat.sum())} of {flat.numel()} maps are constant and carry no information "
            f"(sample, target) {where}{'...' if flat.sum() > 4 else ''}; {what}",
            RuntimeWarning,
            stacklevel=3,
        )


def as_masks(masks: Tensor | np.ndarray, maps: Tensor, name: str = "masks") -> Tensor:
    """Ground-truth ``masks`` as a bool ``(B, K, H, W)`` tensor on the maps' device.

    ``masks`` is ``(B, H, W)`` (one per sample, shared by its targets) or ``(B, K, H, W)``, bool or
    numbers that are all 0 or 1. Every mask must hold at least one pixel.
    """
    if isinstance(masks, np.ndarray):
        masks = torch.from_numpy(np.ascontiguousarray(masks))
    if not isinstance(masks, Tensor):
        raise TypeError(
            f"{name} must be a bool tensor or array of shape (B, H, W) or (B, K, H, W), got {type(masks).__name__}"
        )
    batch, count, height, width = maps.shape
    if masks.dim() == 3:
        masks = masks.unsqueeze(1)
    if (
        masks.dim() != 4
        or masks.shape[0] != batch
        or masks.shape[1] not in (1, count)
        or masks.shape[2:]
        != (
            height,
            width,
        )
    ):
        raise ValueError(
            f"{name} of shape {tuple(masks.shape)} does not fit maps of shape {tuple(maps.shape)}: expected "
            f"({batch}, {height}, {width}) or ({batch}, {count}, {height}, {width})"
        )
    if masks.dtype != torch.bool:
        if masks.is_floating_point() and not torch.isfinite(masks).all():
            raise ValueError(f"{name} contains NaN or inf")
        if not ((masks == 0) | (masks == 1)).all():
            values = torch.unique(masks)[:6].tolist()
            raise ValueError(
                f"{name} must be bool or hold only 0 and 1, got values {values}; for a label map pass "
                "(labels == c) or (labels > 0)"
            )
        masks = masks != 0
    masks = masks.expand(batch, count, height, width).to(maps.device)
    empty = ~masks.flatten(2).any(2)
    if empty.any():
        b, k = empty.nonzero()[0].tolist()
        raise ValueError(f"{name} is empty for sample {b}, target {k}: a mask needs at least one pixel")
    return masks


def boxes_to_masks(
    boxes: Sequence[Sequence[int]] | Sequence[Sequence[Sequence[int]]] | Tensor, size: Sequence[int]
) -> Tensor:
    """Boxes ``(top, left, bottom, right)`` (exclusive bottom/right), one per sample, as ``(B, H, W)`` masks.

    ``boxes`` is ``(B, 4)`` (one box per sample) or ``(B, K, 4)`` (one per target), giving
    ``(B, H, W)`` or ``(B, K, H, W)`` bool masks of ``size = (H, W)``.
    """
    values = torch.as_tensor(boxes).tolist() if isinstance(boxes, Tensor) else boxes
    height, width = (int(v) for v in size)
    nested = len(values) > 0 and len(values[0]) > 0 and isinstance(values[0][0], (Sequence, np.ndarray))
    rows = [list(row) for row in values] if nested else [[row] for row in values]
    if not rows:
        raise ValueError("boxes is empty: give one box per sample")
    masks = torch.zeros(len(rows), len(rows[0]), height, width, dtype=torch.bool)
    for b, row in enumerate(rows):
        if len(row) != len(rows[0]):
            raise ValueError(f"sample {b} has {len(row)} boxes, sample 0 has {len(rows[0])}")
        for k, box in enumerate(row):
            top, left, bottom, right = check_box(tuple(int(v) for v in box))
            if bottom > height or right > width:
                raise ValueError(f"box {box!r} reaches outside an image of size ({height}, {width})")
            masks[b, k, top:bottom, left:right] = True
    return masks if nested else masks[:, 0]


def resolve_maps(
    maps: MapsLike | Callable[..., Any],
    x: Tensor,
    targets: Target | Sequence[Target],
    fwd: ForwardArgs = NO_ARGS,
) -> Tensor:
    """Maps for ``x`` and ``targets``: given, or computed by calling an explainer ``maps(x, targets)``
    (with the model's extra arguments ``fwd`` handed on, when there are any)."""
    if callable(maps) and not isinstance(maps, (Tensor, np.ndarray, Explanation)):
        maps = maps(x, targets, **fwd.passed_on())
    found = as_maps(cast(MapsLike, maps))  # as_maps names anything else in its TypeError
    if found.shape[0] != x.shape[0] or found.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"maps of shape {tuple(found.shape)} do not fit x of shape {tuple(x.shape)}: expected "
            f"({x.shape[0]}, K, {x.shape[2]}, {x.shape[3]})"
        )
    return found.to(x.device)
