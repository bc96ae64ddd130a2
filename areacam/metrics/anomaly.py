"""Anomaly localisation over a whole set: pixel AUROC, AUPRO (MVTec AD) and image AUROC.

Every function takes ``maps`` ``(N, H, W)`` (one anomaly map per image, higher = more abnormal; any
real values) and bool ``masks`` ``(N, H, W)`` (the true anomalous pixels; normal images have empty
masks) and returns one float for the set. Volumes ``(N, D, H, W)`` work the same way.

Each curve comes from one sort of the pooled pixels: the pixels are ordered by score once, the
counts behind every threshold are cumulative sums over that order, and tied scores are merged into
one point (as scikit-learn's ``roc_curve`` and the MVTec AD evaluation code do). A set where a metric
is undefined (no anomalous pixel, no normal pixel, no abnormal image) raises a ``ValueError`` naming
it; :func:`defined_anomaly_scores` gives ``None`` there instead, for summaries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from areacam._util.optional import require
from areacam.metrics.catalog import describe

__all__ = ["aupro", "defined_anomaly_scores", "image_auroc", "pixel_auroc", "region_weights"]

ArrayLike = Tensor | np.ndarray


def _as_tensor(value: object, name: str) -> Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be an (N, H, W) tensor or array, got {type(value).__name__}")
    return value.detach()


def check_anomaly_inputs(maps: object, masks: object) -> tuple[Tensor, Tensor]:
    """``maps`` as a finite float ``(N, *spatial)`` tensor and ``masks`` as a bool one of the same shape."""
    maps, masks = _as_tensor(maps, "maps"), _as_tensor(masks, "masks")
    if maps.dim() < 2 or maps.numel() == 0:
        raise ValueError(
            f"maps must be (N, H, W), one map per image (for an Explanation: expl.maps[:, k]), got shape "
            f"{tuple(maps.shape)}"
        )
    if masks.shape != maps.shape:
        raise ValueError(
            f"masks of shape {tuple(masks.shape)} do not fit maps of shape {tuple(maps.shape)}: "
            "give one mask per map, at the map's size"
        )
    if not maps.is_floating_point():
        maps = maps.double()
    finite = torch.isfinite(maps)
    if not finite.all():
        where = (~finite).nonzero()[0].tolist()
        raise ValueError(f"maps contains {int((~finite).sum())} NaN or inf values (first at {tuple(where)})")
    if masks.dtype != torch.bool:
        if not ((masks == 0) | (masks == 1)).all():
            raise ValueError(f"masks must be bool or hold only 0 and 1, got values {torch.unique(masks)[:6].tolist()}")
        masks = masks != 0
    return maps, masks.to(maps.device)


def region_weights(masks: Tensor) -> tuple[Tensor, int]:
    """Per-pixel weight ``1 / |region|`` of each connected anomalous region (full connectivity, as the
    MVTec AD code's ``np.ones((3, 3))`` structure) and 0 on normal pixels; and the number of regions."""
    label = require("scipy.ndimage", "areacam.metrics.aupro").label
    weights = np.zeros(masks.shape, dtype=np.float64)
    structure = np.ones((3,) * (masks.dim() - 1), dtype=int)
    regions = 0
    for i, mask in enumerate(masks.cpu().numpy()):
        labels, count = label(mask, structure=structure)
        if count:
            sizes = np.bincount(labels.ravel())
            inverse = np.where(sizes > 0, 1.0 / np.maximum(sizes, 1), 0.0)
            inverse[0] = 0.0
            weights[i] = inverse[labels]
        regions += count
    return torch.from_numpy(weights).to(masks.device), regions


def cumulative_counts(scores: Tensor, weights: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Distinct ``scores`` from high to low ``(T,)`` and, per weight, the sum over the scores at or above
    each, ``(len(weights), T)`` float64: the counts behind every threshold, from one sort."""
    order = scores.reshape(-1).argsort(descending=True)
    ordered = scores.reshape(-1)[order]
    last = torch.ones_like(ordered, dtype=torch.bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    sums = torch.stack([w.reshape(-1)[order].to(torch.float64).cumsum(0)[last] for w in weights])
    return ordered[last], sums


def roc_area(false_pos: Tensor, true_pos: Tensor) -> float:
    """Trapezoidal area under the ROC curve from cumulative counts (both ending at their totals)."""
    fpr = torch.cat([false_pos.new_zeros(1), false_pos / false_pos[-1]])
    tpr = torch.cat([true_pos.new_zeros(1), true_pos / true_pos[-1]])
    return float(torch.trapezoid(tpr, fpr))


def pro_area(fpr: Tensor, pro: Tensor, fpr_limit: float) -> float:
    """Area under the (FPR, PRO) curve from 0 to ``fpr_limit`` (interpolated there), over ``fpr_limit``."""
    fpr = torch.cat([fpr.new_zeros(1), fpr.clamp(0, 1)])
    pro = torch.cat([pro.new_zeros(1), pro.clamp(0, 1)])
    keep = int(torch.searchsorted(fpr, torch.tensor([fpr_limit], dtype=fpr.dtype), right=True))
    area = float(torch.trapezoid(pro[:keep], fpr[:keep])) if keep > 1 else 0.0
    if keep < fpr.numel() and fpr[keep - 1] < fpr_limit:
        x0, x1, y0, y1 = fpr[keep - 1], fpr[keep], pro[keep - 1], pro[keep]
        at_limit = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        area += float(0.5 * (y0 + at_limit) * (fpr_limit - x0))
    return area / fpr_limit


def _check_limit(fpr_limit: object) -> float:
    if isinstance(fpr_limit, bool) or not isinstance(fpr_limit, (int, float)) or not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must be a false-positive rate in (0, 1], got {fpr_limit!r}")
    return float(fpr_limit)


def _pixel_counts(maps: Tensor, masks: Tensor) -> tuple[int, int]:
    abnormal = int(masks.sum())
    return abnormal, masks.numel() - abnormal


@describe("pixel_auroc", "localisation", higher_is_better=True, needs_masks=True, layer_ranking=False, per_set=True)
def pixel_auroc(maps: ArrayLike, masks: ArrayLike) -> float:
    """ROC AUC of all pixels pooled: ``sklearn.metrics.roc_auc_score(masks.ravel(), maps.ravel())``.

    Ties are merged into one ROC point (the trapezoid counts a tie as half right, as scikit-learn).
    Undefined (``ValueError``) when the masks hold no anomalous pixel or nothing else.
    """
    maps, masks = check_anomaly_inputs(maps, masks)
    abnormal, normal = _pixel_counts(maps, masks)
    if abnormal == 0 or normal == 0:
        raise ValueError(
            f"pixel_auroc is undefined: the masks hold {abnormal} anomalous and {normal} normal pixels; it needs both"
        )
    _, (pos, neg) = cumulative_counts(maps, [masks, ~masks])
    return roc_area(neg, pos)


@describe("aupro", "localisation", higher_is_better=True, needs_masks=True, layer_ranking=False, per_set=True)
def aupro(maps: ArrayLike, masks: ArrayLike, fpr_limit: float = 0.3) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit``, divided by it (Bergmann et al. 2021).

    At each threshold, PRO is the mean over every connected anomalous region of every image (full
    connectivity) of the share of its pixels at or above the threshold, and FPR the share of all normal
    pixels at or above it; the curve starts at ``(0, 0)``, is integrated by the trapezoid rule and
    interpolated linearly at ``fpr_limit`` (as the MVTec AD evaluation code). 1.0 is perfect; a map
    that ranks pixels at random scores about ``fpr_limit / 2``. Undefined (``ValueError``) when the
    masks hold no anomalous pixel or nothing else.
    """
    limit = _check_limit(fpr_limit)
    maps, masks = check_anomaly_inputs(maps, masks)
    abnormal, normal = _pixel_counts(maps, masks)
    if abnormal == 0 or normal == 0:
        raise ValueError(
            f"aupro is undefined: the masks hold {abnormal} anomalous and {normal} normal pixels; it needs both"
        )
    weights, regions = region_weights(masks)
    _, (false_pos, overlap) = cumulative_counts(maps, [~masks, weights])
    return pro_area(false_pos / normal, overlap / regions, limit)


@describe("image_auroc", "localisation", higher_is_better=True, needs_masks=True, layer_ranking=False, per_set=True)
def image_auroc(maps: ArrayLike, masks: ArrayLike) -> float:
    """ROC AUC of the images: each scored by its map's maximum, abnormal when its mask is not empty.

    Equals ``roc_auc_score(masks.flatten(1).any(1), maps.flatten(1).amax(1))``. Undefined
    (``ValueError``) unless the set holds both normal and abnormal images.
    """
    maps, masks = check_anomaly_inputs(maps, masks)
    labels = masks.flatten(1).any(1)
    abnormal = int(labels.sum())
    if abnormal == 0 or abnormal == labels.numel():
        raise ValueError(
            f"image_auroc is undefined: {abnormal} of {labels.numel()} images are abnormal; it needs both kinds"
        )
    _, (pos, neg) = cumulative_counts(maps.flatten(1).amax(1), [labels, ~labels])
    return roc_area(neg, pos)


def defined_anomaly_scores(maps: ArrayLike, masks: ArrayLike, fpr_limit: float = 0.3) -> dict[str, float | None]:
    """``{"pixel_auroc", "aupro", "image_auroc"}`` of one set, ``None`` where a metric is undefined."""
    limit = _check_limit(fpr_limit)
    maps, masks = check_anomaly_inputs(maps, masks)
    abnormal, normal = _pixel_counts(maps, masks)
    pixels_ok = abnormal > 0 and normal > 0
    images = masks.flatten(1).any(1)
    images_ok = bool(images.any()) and not bool(images.all())
    return {
        "pixel_auroc": pixel_auroc(maps, masks) if pixels_ok else None,
        "aupro": aupro(maps, masks, limit) if pixels_ok else None,
        "image_auroc": image_auroc(maps, masks) if images_ok else None,
    }
