"""Localisation: does a map point at the ground-truth object?

Every function takes ``maps`` ``(B, K, H, W)`` (an :class:`~areacam.Explanation`'s maps, or the
explanation itself) and bool ``masks`` ``(B, H, W)`` (one per sample, shared by its ``K`` targets) or
``(B, K, H, W)``, and returns a ``(B, K)`` float tensor. The definitions are those of Quantus 0.6
(``PointingGame``, ``RelevanceMassAccuracy``, ``RelevanceRankAccuracy``) on the maps as given. A
constant map carries no information: it scores 0 on every metric here (where Quantus returns a hit
or NaN) and a ``RuntimeWarning`` names it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from areacam.metrics.catalog import describe
from areacam.metrics.maps import MapsLike, as_maps, as_masks, flat_maps, warn_flat

__all__ = ["iou", "pointing_game", "relevance_mass", "relevance_rank"]


def _prepare(maps: MapsLike, masks: Tensor | np.ndarray, what: str) -> tuple[Tensor, Tensor, Tensor]:
    """Checked maps, ``(B, K, H, W)`` bool masks and the ``(B, K)`` constant-map flags (warned about)."""
    maps = as_maps(maps)
    masks = as_masks(masks, maps)
    flat = flat_maps(maps)
    warn_flat(flat, f"they score 0 in {what}")
    return maps, masks, flat


@describe("pointing_game", "localisation", higher_is_better=True, needs_masks=True)
def pointing_game(maps: MapsLike, masks: Tensor | np.ndarray, tolerance: int = 0) -> Tensor:
    """1.0 where the map's maximum lies in the mask, else 0.0: ``(B, K)``.

    Ties at the maximum count as a hit if any of them is inside (as Quantus). ``tolerance`` (pixels)
    grows the mask by a disk of that radius first, as in Zhang et al.'s pointing game (15 px at 224).
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0 (pixels), got {tolerance!r}")
    maps, masks, flat = _prepare(maps, masks, "the pointing game")
    if tolerance > 0:
        taps = torch.arange(-tolerance, tolerance + 1, device=maps.device, dtype=torch.float32)
        disk = ((taps[:, None] ** 2 + taps[None, :] ** 2) <= tolerance**2).float()
        batch, count, height, width = masks.shape
        grown = F.conv2d(masks.reshape(-1, 1, height, width).float(), disk[None, None], padding=tolerance)
        masks = (grown > 0.5).view(batch, count, height, width)
    peak = maps == maps.flatten(2).amax(2)[..., None, None]
    hit = (peak & masks).flatten(2).any(2)
    return (hit & ~flat).float()


@describe("relevance_mass", "localisation", higher_is_better=True, needs_masks=True)
def relevance_mass(maps: MapsLike, masks: Tensor | np.ndarray) -> Tensor:
    """Share of the map's sum that lies inside the mask: ``(B, K)`` (Arras et al.'s relevance mass).

    Maps in ``[0, 1]`` give a share in ``[0, 1]``; 1.0 means all of the map's mass is on the object.
    """
    maps, masks, flat = _prepare(maps, masks, "relevance mass")
    inside = (maps * masks).flatten(2).sum(2)
    total = maps.flatten(2).sum(2)
    ok = ~flat & (total != 0)
    return torch.where(ok, inside / torch.where(ok, total, 1), 0.0)


@describe("relevance_rank", "localisation", higher_is_better=True, needs_masks=True)
def relevance_rank(maps: MapsLike, masks: Tensor | np.ndarray) -> Tensor:
    """Share of the mask among the map's top-``|mask|`` pixels: ``(B, K)`` (Arras et al.'s relevance rank).

    Ties in the map are ordered arbitrarily (as Quantus's ``argsort``).
    """
    maps, masks, flat = _prepare(maps, masks, "relevance rank")
    order = maps.flatten(2).argsort(dim=2, descending=True)
    inside = masks.flatten(2).gather(2, order).float().cumsum(2)
    size = masks.flatten(2).sum(2)
    hits = inside.gather(2, (size - 1).unsqueeze(2)).squeeze(2)
    return torch.where(flat, 0.0, hits / size)


@describe("iou", "localisation", higher_is_better=True, needs_masks=True)
def iou(maps: MapsLike, masks: Tensor | np.ndarray, threshold: float = 0.5) -> Tensor:
    """Intersection over union of ``map >= threshold * max(map)`` with the mask: ``(B, K)``.

    The thresholded map is the usual box-free localisation of CAM papers (Zhou et al. keep the
    pixels above 20% of the maximum; 0.5 is the default here).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a fraction of the map's maximum in (0, 1], got {threshold!r}")
    maps, masks, flat = _prepare(maps, masks, "IoU")
    kept = maps >= threshold * maps.flatten(2).amax(2)[..., None, None]
    union = (kept | masks).flatten(2).sum(2)
    inter = (kept & masks).flatten(2).sum(2)
    return torch.where(flat, 0.0, inter / union.clamp(min=1))
