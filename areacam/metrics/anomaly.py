"""Anomaly localisation over a whole set: pixel AUROC, AUPRO (MVTec AD) and image AUROC.

Every function takes ``maps`` ``(N, H, W)`` (one anomaly map per image, higher = more abnormal; any
real values) and bool ``masks`` ``(N, H, W)`` (the true anomalous pixels; normal images have empty
masks) and returns one float for the set. Volumes ``(N, D, H, W)`` work the same way.

Each curve comes from sorting the pooled scores once (the normal ones, and the abnormal ones with
their weights), never from a pass per threshold (:func:`overlap_area`); tied scores are one point of
the curve, as in scikit-learn's ``roc_curve`` and the MVTec AD evaluation code. A set where a metric
is undefined (no anomalous pixel, no normal pixel, no abnormal image) raises a ``ValueError`` naming
it; :func:`defined_anomaly_scores` gives ``None`` there instead, for summaries.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from areacam._util.optional import require
from areacam.metrics.catalog import describe

__all__ = [
    "aupro",
    "check_anomaly_inputs",
    "check_fpr_limit",
    "defined_anomaly_scores",
    "image_auroc",
    "overlap_area",
    "pixel_auroc",
    "region_labels",
    "segments_area",
]

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


def region_labels(masks: Tensor) -> tuple[np.ndarray, int]:
    """Connected anomalous regions of every mask, numbered ``1..R`` across the set (0: normal): one
    labelling call with full connectivity inside an image (the MVTec AD code's ``np.ones((3, 3))``) and
    none across images."""
    label = require("scipy.ndimage", "areacam.metrics.aupro").label
    structure = np.zeros((3,) * masks.dim(), dtype=int)
    structure[1] = 1
    labels, regions = label(masks.cpu().numpy(), structure=structure)
    return labels, int(regions)


def overlap_area(normal: np.ndarray, abnormal: np.ndarray, weights: np.ndarray, fpr_limit: float = 1.0) -> float:
    """Area under the curve of (share of ``normal`` scores >= t, weighted share of ``abnormal`` scores
    >= t) over every threshold ``t``, from ``(0, 0)`` to a false-positive rate of ``fpr_limit``, over it.

    With unit weights this is the ROC AUC (the trapezoid counts a tie as half, as scikit-learn); with
    ``1 / |region|`` weights, the area under the PRO curve. Only thresholds that change the false-positive
    rate add area: at a distinct normal score ``u`` held by ``c`` of the ``N`` normal pixels the curve
    moves right by ``c / N``, from the overlap of the abnormal scores ``> u`` to that of those ``>= u``
    (a straight segment: one trapezoid); the segment that crosses ``fpr_limit`` is interpolated
    linearly there (as the MVTec AD code does). One sort of the normal scores (only those of the top
    ``fpr_limit`` share, found by a partition) and one search of the abnormal ones among them give
    every segment: no pass per threshold.
    """
    flat_normal = normal.ravel()
    count = flat_normal.size
    # Only the scores of the top `fpr_limit` share (and their ties) reach the limit: sort those alone.
    low = count - int(np.ceil(fpr_limit * count)) - 1
    if low > 0:
        flat_normal = flat_normal[flat_normal >= np.partition(flat_normal, low)[low]]
    ordered = np.sort(flat_normal)  # low to high
    last = np.ones(ordered.size, dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    ends = np.flatnonzero(last)
    values = ordered[ends]  # distinct normal scores u_0 < u_1 < ...
    at_or_above = (ordered.size - np.concatenate([[0], ends[:-1] + 1])) / count  # FPR at each u
    above_fpr = (ordered.size - ends - 1) / count  # FPR just above each u
    flat, w = abnormal.ravel(), weights.ravel().astype(np.float64)
    index = np.searchsorted(values, flat, side="left")  # distinct normal scores below each abnormal one
    tie = index < values.size
    tie[tie] = values[index[tie]] == flat[tie]
    per_index = np.bincount(index, weights=w, minlength=values.size + 1)
    above: np.ndarray = np.cumsum(per_index[::-1])[::-1][1:]  # weight of abnormal scores > u_k (those with index > k)
    at: np.ndarray = above + np.bincount(index[tie], weights=w[tie], minlength=values.size)[: values.size]
    total = float(w.sum())
    return segments_area(at_or_above, above_fpr, above / total, at / total, fpr_limit)


def segments_area(
    at_or_above: np.ndarray, above_fpr: np.ndarray, above: np.ndarray, at: np.ndarray, fpr_limit: float
) -> float:
    """The curve's area up to ``fpr_limit`` over it, from its segments: one per distinct normal score
    ``u_k`` (ascending), from ``(above_fpr[k], above[k])`` (the rates of the scores ``> u_k``) to
    ``(at_or_above[k], at[k])`` (those ``>= u_k``); the segment that crosses the limit is interpolated."""
    inside = at_or_above <= fpr_limit
    area = float(np.sum(0.5 * (above[inside] + at[inside]) * (at_or_above[inside] - above_fpr[inside])))
    crossing = np.flatnonzero(~inside)
    if crossing.size:
        k = crossing[-1]  # the highest score whose segment ends beyond the limit
        if above_fpr[k] < fpr_limit:
            share = (fpr_limit - above_fpr[k]) / (at_or_above[k] - above_fpr[k])
            at_limit = above[k] + (at[k] - above[k]) * share
            area += 0.5 * (above[k] + at_limit) * (fpr_limit - above_fpr[k])
    return area / fpr_limit


def check_fpr_limit(fpr_limit: object) -> float:
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
    values, truth = maps.cpu().numpy(), masks.cpu().numpy()
    return overlap_area(values[~truth], values[truth], np.ones(abnormal))


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
    limit = check_fpr_limit(fpr_limit)
    maps, masks = check_anomaly_inputs(maps, masks)
    abnormal, normal = _pixel_counts(maps, masks)
    if abnormal == 0 or normal == 0:
        raise ValueError(
            f"aupro is undefined: the masks hold {abnormal} anomalous and {normal} normal pixels; it needs both"
        )
    labels, _ = region_labels(masks)
    values, truth = maps.cpu().numpy(), masks.cpu().numpy()
    regions = labels[truth]
    weights = 1.0 / np.bincount(regions)[regions]  # each region weighs 1 in all: the mean over regions
    return overlap_area(values[~truth], values[truth], weights, limit)


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
    peaks, truth = maps.flatten(1).amax(1).cpu().numpy(), labels.cpu().numpy()
    return overlap_area(peaks[~truth], peaks[truth], np.ones(abnormal))


def defined_anomaly_scores(maps: ArrayLike, masks: ArrayLike, fpr_limit: float = 0.3) -> dict[str, float | None]:
    """``{"pixel_auroc", "aupro", "image_auroc"}`` of one set, ``None`` where a metric is undefined."""
    limit = check_fpr_limit(fpr_limit)
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
