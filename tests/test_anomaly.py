"""Anomaly localisation: the generated textures, and pixel AUROC / AUPRO / image AUROC against references.

The references are scikit-learn's ``roc_auc_score`` and a naive AUPRO written here: one pass over the
pixels per threshold, per-region overlaps counted region by region, the curve integrated as the MVTec
AD evaluation code does. Both sides compute in float64; the tolerance is :data:`FLOAT64` (AUCs are in
``[0, 1]``), the budget of two float64 evaluation orders.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _numerics import FLOAT64
from scipy.ndimage import label
from sklearn.metrics import roc_auc_score

import areacam as ac
from areacam import data
from areacam.metrics.catalog import METRICS, names

pytestmark = pytest.mark.usefixtures("one_thread")


def naive_aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float) -> float:
    """One pass per distinct threshold, high to low; regions with full connectivity (MVTec AD)."""
    regions = []
    for i in range(len(masks)):
        labels, count = label(masks[i], structure=np.ones((3, 3)))
        regions += [(i, labels == k) for k in range(1, count + 1)]
    normal = maps[~masks]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        fprs.append(float(np.mean(normal >= t)))
        pros.append(float(np.mean([np.mean(maps[i][r] >= t) for i, r in regions])))
    fprs_a, pros_a = np.array(fprs), np.array(pros)
    area = 0.0
    for j in range(1, len(fprs_a)):
        x0, x1, y0, y1 = fprs_a[j - 1], fprs_a[j], pros_a[j - 1], pros_a[j]
        if x1 <= fpr_limit:
            area += 0.5 * (y0 + y1) * (x1 - x0)
        elif x0 < fpr_limit:
            y = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            area += 0.5 * (y0 + y) * (fpr_limit - x0)
    return area / fpr_limit


@pytest.fixture(scope="module")
def scored_set():
    """8 generated images at 32 px (4 abnormal) and a noisy map that is partly right."""
    _, masks = data.anomalies(8, size=32, random_state=3)
    rng = np.random.default_rng(0)
    m = masks.numpy()
    maps = rng.normal(size=m.shape) + 1.5 * m
    return maps, m


# ------------------------------------------------------------------------------------------ data


def test_anomalies_shapes_share_masks_and_seeds():
    x, masks = data.anomalies(40, size=32, random_state=1)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32 and masks.shape == (40, 32, 32)
    assert masks.dtype == torch.bool and 0 <= float(x.min()) and float(x.max()) <= 1
    assert int(masks.flatten(1).any(1).sum()) == 20  # the stated share, exactly
    again, masks_again = data.anomalies(40, size=32, random_state=1)
    assert torch.equal(x, again) and torch.equal(masks, masks_again)
    other, _ = data.anomalies(40, size=32, random_state=2)
    assert not torch.equal(x, other)
    normal, empty = data.anomalies(40, size=32, random_state=1, share=0.0)
    assert not empty.any()
    # The mask is exactly where the anomaly changed the image: image i is normal image i outside it.
    changed = (x != normal).any(1)
    assert torch.equal(changed & ~masks, torch.zeros_like(masks))
    assert (changed & masks).sum() >= 0.9 * masks.sum()


def test_anomalies_bad_arguments():
    with pytest.raises(ValueError, match="share"):
        data.anomalies(4, share=1.5)
    with pytest.raises(ValueError, match="size"):
        data.anomalies(4, size=8)
    with pytest.raises(TypeError, match="n must be an int"):
        data.anomalies(2.0)  # type: ignore[arg-type]  # the wrong type on purpose


# ------------------------------------------------------------------------------------------ metrics


@pytest.mark.parametrize("levels", [None, 6])
def test_pixel_and_image_auroc_equal_sklearn(scored_set, levels):
    maps, masks = scored_set
    maps = maps if levels is None else np.round(maps * levels / 4) / levels  # many ties
    ours = ac.metrics.pixel_auroc(torch.from_numpy(maps), torch.from_numpy(masks))
    assert abs(ours - roc_auc_score(masks.ravel(), maps.ravel())) <= FLOAT64
    image = ac.metrics.image_auroc(maps, masks)
    assert abs(image - roc_auc_score(masks.any((1, 2)), maps.max((1, 2)))) <= FLOAT64


@pytest.mark.parametrize(("levels", "limit"), [(None, 0.3), (5, 0.3), (5, 1.0), (None, 0.05)])
def test_aupro_equals_the_naive_reference(scored_set, levels, limit):
    maps, masks = scored_set
    maps = maps if levels is None else np.round(maps * levels / 4) / levels
    assert abs(ac.metrics.aupro(maps, masks, fpr_limit=limit) - naive_aupro(maps, masks, limit)) <= FLOAT64


def test_aupro_by_hand():
    # One image, two regions (sizes 2 and 1), five normal pixels.
    masks = np.array([[[1, 1, 0, 0], [0, 0, 0, 1]]], dtype=bool)
    maps = np.array([[[0.9, 0.5, 0.8, 0.15], [0.1, 0.2, 0.3, 0.7]]])
    # Thresholds 0.9: FPR 0, PRO (1/2 + 0) / 2 = .25; 0.8: FPR 1/5, PRO .25; 0.7 and 0.5: FPR 1/5, PRO
    # .75 then 1 (a vertical rise). Up to FPR 1/5 the area is .25 * 1/5, over 1/5: .25.
    assert abs(ac.metrics.aupro(maps, masks, fpr_limit=0.2) - 0.25) <= FLOAT64
    # Up to 2/5: + (1 + 1) / 2 * 1/5 from the next threshold (0.3: FPR 2/5, PRO 1): (.05 + .2) / .4.
    assert abs(ac.metrics.aupro(maps, masks.astype(np.int64), fpr_limit=0.4) - 0.625) <= FLOAT64
    # Pixels touching at a corner are one region (full connectivity, as MVTec AD): one region of 3.
    diagonal = np.array([[[1, 1, 0], [0, 0, 1]]], dtype=bool)
    # Thresholds .9: PRO 1/3 at FPR 0; .8: FPR 1/3; then PRO rises to 1 at FPR 1/3: area 1/3 * 1/3.
    assert abs(ac.metrics.aupro(np.array([[[0.9, 0.5, 0.8], [0.1, 0.2, 0.7]]]), diagonal, 1 / 3) - 1 / 3) <= FLOAT64


def test_a_perfect_map_and_a_constant_map():
    _, masks = data.anomalies(6, size=32, random_state=0)
    perfect = masks.double()
    assert ac.metrics.pixel_auroc(perfect, masks) == 1.0 and abs(ac.metrics.aupro(perfect, masks) - 1) <= FLOAT64
    flat = torch.zeros(masks.shape)
    assert ac.metrics.pixel_auroc(flat, masks) == 0.5  # one threshold: the ROC diagonal, as sklearn
    assert abs(ac.metrics.aupro(flat, masks) - 0.15) <= FLOAT64  # the diagonal up to 0.3, over 0.3


def test_anomaly_metrics_refuse_undefined_and_bad_input():
    maps = torch.rand(3, 8, 8)
    normal = torch.zeros(3, 8, 8, dtype=torch.bool)
    for fn in (ac.metrics.pixel_auroc, ac.metrics.aupro, ac.metrics.image_auroc):
        with pytest.raises(ValueError, match="undefined"):
            fn(maps, normal)
    with pytest.raises(ValueError, match=r"do not fit maps of shape \(3, 8, 8\)"):
        ac.metrics.aupro(maps, torch.zeros(3, 4, 4, dtype=torch.bool))
    bad = maps.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf values \(first at \(1, 2, 3\)\)"):
        ac.metrics.pixel_auroc(bad, normal)
    with pytest.raises(ValueError, match="fpr_limit"):
        ac.metrics.aupro(maps, normal, fpr_limit=0.0)
    with pytest.raises(ValueError, match=r"expl.maps\[:, k\]"):
        ac.metrics.aupro(torch.rand(8), torch.zeros(8, dtype=torch.bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        ac.metrics.aupro(maps, torch.full((3, 8, 8), 2))


def test_set_metrics_are_catalogued_apart_from_the_per_map_ones():
    assert {"pixel_auroc", "aupro", "image_auroc"} <= set(names(per_set=True))
    assert not {"pixel_auroc", "aupro", "image_auroc"} & set(names())
    assert METRICS["aupro"].higher_is_better and METRICS["aupro"].needs_masks
