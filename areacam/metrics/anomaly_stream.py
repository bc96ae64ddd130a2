"""Pixel AUROC, AUPRO and image AUROC of a set too large to hold: fed batch by batch, in bounded memory.

:class:`AnomalyAccumulator` keeps three histograms over ``2**20`` bins of the map values (normal pixels;
anomalous pixels; anomalous pixels weighted by ``1 / |region|``) and each image's maximum and label,
so its memory does not grow with the set (24 MB, plus 9 bytes per image). A bin holds the float32
values that share their sign, exponent and first 11 of 23 mantissa bits (bins are ordered as the
values are; their width is at most ``2**-11`` of the values in them).

What is exact:

- **image AUROC** always: the maxima are kept, and the curve is :func:`~areacam.metrics.image_auroc`'s.
- **pixel AUROC and AUPRO** when every value fed is a float16 value (a map store written with
  ``--float16``, or maps rounded to it): distinct float16 values never share a bin, so the curves are
  those of :func:`~areacam.metrics.pixel_auroc` and :func:`~areacam.metrics.aupro` (equal to float64
  rounding of the sums). Otherwise the values in one bin count as tied, and the result differs from the
  exact one by at most the ``*_bound`` it reports: within a bin the exact curve stays inside the
  rectangle the bin's segment spans, so each bin errs by at most half its rectangle (the one that
  crosses ``fpr_limit``: its whole rectangle up to the limit), over ``fpr_limit``. The bound is 0 for an
  exact result.

A metric without the pixels or images it needs (no anomalous pixel, no abnormal image) is ``None``,
never NaN.
"""

from __future__ import annotations

import numpy as np

from areacam.metrics.anomaly import (
    ArrayLike,
    check_anomaly_inputs,
    check_fpr_limit,
    overlap_area,
    region_labels,
    segments_area,
)

__all__ = ["AnomalyAccumulator"]

SHIFT = 12  # float32 bits dropped from each value's ordered key: 2**(32 - SHIFT) bins
BINS = 1 << (32 - SHIFT)


def ordered_bins(values: np.ndarray) -> np.ndarray:
    """The bin of each float32 value: its bit pattern made order-preserving (negative values flipped,
    ``-0.0`` as ``+0.0``), then cut to its top ``32 - SHIFT`` bits."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 + 0.0 == +0.0
    negative = (bits >> 31).astype(bool)
    key = np.where(negative, ~bits, bits | np.uint32(0x80000000))
    return (key >> SHIFT).astype(np.int64)


def binned_area(normal: np.ndarray, abnormal: np.ndarray, fpr_limit: float) -> tuple[float, float]:
    """``(area, bound)``: the curve area of :func:`~areacam.metrics.anomaly.overlap_area` from per-bin
    normal counts and abnormal weights (the values of one bin taken as tied), and the largest difference
    from the curve of the values themselves (see the module docstring)."""
    count, total = float(normal.sum()), float(abnormal.sum())
    occupied = np.flatnonzero(normal)  # only bins with normal values move the false-positive rate
    above_all = np.cumsum(abnormal[::-1])[::-1]  # weight in this bin and every higher one
    at = above_all[occupied] / total
    above = at - abnormal[occupied] / total
    normal_above = np.cumsum(normal[::-1])[::-1][occupied]
    at_or_above = normal_above / count
    above_fpr = (normal_above - normal[occupied]) / count
    area = segments_area(at_or_above, above_fpr, above, at, fpr_limit)
    width = np.minimum(at_or_above, fpr_limit) - above_fpr
    inside = at_or_above <= fpr_limit
    half = np.where(inside, 0.5, 1.0)  # the crossing bin: its whole rectangle up to the limit
    keep = width > 0
    bound = float(np.sum((half * width * (at - above))[keep])) / fpr_limit
    return area, bound


class AnomalyAccumulator:
    """Pixel AUROC, AUPRO and image AUROC of a set fed as batches of ``(B, H, W)`` maps and masks.

    ``update(maps, masks)`` takes one batch (the checks and conventions of
    :func:`~areacam.metrics.pixel_auroc`: finite maps, bool or 0/1 masks of the same shape); regions are
    labelled within each image, so batches may cut the set anywhere between images. :meth:`result`
    gives the metrics so far. See the module docstring for what is exact and the stated bound.

    Example::

        acc = AnomalyAccumulator()
        for maps, masks in batches:          # (B, H, W) each
            acc.update(maps, masks)
        acc.result(fpr_limit=0.3)            # {"pixel_auroc": ..., "pixel_auroc_bound": ..., "aupro": ...}
    """

    def __init__(self) -> None:
        self.normal = np.zeros(BINS, dtype=np.int64)
        self.abnormal = np.zeros(BINS, dtype=np.int64)
        self.region_weight = np.zeros(BINS, dtype=np.float64)
        self.regions = 0
        self.float16 = True  # every value so far is a float16 value: the binned curves are exact
        self._peaks: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def update(self, maps: ArrayLike, masks: ArrayLike) -> None:
        """Add a batch of ``(B, H, W)`` maps (higher = more abnormal) and their bool masks."""
        maps_t, masks_t = check_anomaly_inputs(maps, masks)
        values, truth = maps_t.detach().cpu().float().numpy(), masks_t.cpu().numpy()
        if self.float16:
            # On the values as given: a float64 value rounds to float32 before it is binned.
            self.float16 = bool((maps_t.half().to(maps_t.dtype) == maps_t).all())
        bins = ordered_bins(values)
        self.normal += np.bincount(bins[~truth], minlength=BINS)
        inside = bins[truth]
        self.abnormal += np.bincount(inside, minlength=BINS)
        if inside.size:
            labels, count = region_labels(masks_t)
            regions = labels[truth]
            self.region_weight += np.bincount(inside, weights=1.0 / np.bincount(regions)[regions], minlength=BINS)
            self.regions += count
        self._peaks.append(maps_t.flatten(1).amax(1).double().cpu().numpy())
        self._labels.append(masks_t.flatten(1).any(1).cpu().numpy())

    @property
    def images(self) -> int:
        return int(sum(len(p) for p in self._peaks))

    def result(self, fpr_limit: float = 0.3) -> dict[str, float | int | bool | None]:
        """``pixel_auroc``, ``aupro`` (to ``fpr_limit``) and ``image_auroc``, with ``pixel_auroc_bound``
        and ``aupro_bound`` (0 when ``exact``), ``exact``, and the counts: ``images``,
        ``abnormal_images``, ``regions``, ``anomalous_pixels``, ``normal_pixels``. ``None`` where
        undefined."""
        limit = check_fpr_limit(fpr_limit)
        abnormal, normal = int(self.abnormal.sum()), int(self.normal.sum())
        out: dict[str, float | int | bool | None] = dict.fromkeys(
            ("pixel_auroc", "pixel_auroc_bound", "aupro", "aupro_bound", "image_auroc")
        )
        if abnormal and normal:
            auroc, auroc_bound = binned_area(self.normal, self.abnormal.astype(np.float64), 1.0)
            pro, pro_bound = binned_area(self.normal, self.region_weight, limit)
            out.update(pixel_auroc=float(auroc), aupro=float(pro))
            out.update(pixel_auroc_bound=0.0 if self.float16 else auroc_bound)
            out.update(aupro_bound=0.0 if self.float16 else pro_bound)
        peaks = np.concatenate(self._peaks) if self._peaks else np.zeros(0)
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0, dtype=bool)
        if labels.any() and not labels.all():
            out["image_auroc"] = overlap_area(peaks[~labels], peaks[labels], np.ones(int(labels.sum())))
        out.update(
            exact=self.float16,
            fpr_limit=limit,
            images=int(labels.size),
            abnormal_images=int(labels.sum()),
            regions=self.regions,
            anomalous_pixels=abnormal,
            normal_pixels=normal,
        )
        return out
