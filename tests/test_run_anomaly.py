"""Set-level anomaly metrics streamed in bounded memory (``AnomalyAccumulator``) and at the end of
``areacam run --masks``: equal to ``ac.metrics.pixel_auroc``/``aupro``/``image_auroc`` on the same maps
held in memory, exactly for float16 values and within the reported bound otherwise; undefined ones
are ``None``, never NaN."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from _numerics import FLOAT64

import areacam as ac
from areacam.app.run import run
from areacam.metrics.anomaly_stream import AnomalyAccumulator
from areacam.runs import open_run

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = ("pixel_auroc", "aupro", "image_auroc")

MODEL = '''
import torch
from torch import nn


class TinyAE(nn.Module):
    """A tiny convolutional autoencoder returning (reconstruction, code), as the zoo's AE."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, 2, 1), nn.ReLU())
        self.decoder = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(6, 3, 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        code = self.encoder(x)
        return self.decoder(code), code


def build():
    torch.manual_seed(0)
    return TinyAE()
'''


def reference(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    return {
        "pixel_auroc": ac.metrics.pixel_auroc(maps, masks),
        "aupro": ac.metrics.aupro(maps, masks, fpr_limit=0.3),
        "image_auroc": ac.metrics.image_auroc(maps, masks),
    }


def streamed(maps: torch.Tensor, masks: torch.Tensor, cuts: list[int]) -> dict:
    acc = AnomalyAccumulator()
    for start, stop in zip([0, *cuts], [*cuts, len(maps)]):
        acc.update(maps[start:stop], masks[start:stop])
    return acc.result(fpr_limit=0.3)


def assert_within(result: dict, expected: dict[str, float]) -> None:
    """Each metric within its reported bound (0 when exact) plus float64 summation-order error."""
    for key in KEYS:
        bound = result.get(f"{key}_bound", 0.0) or 0.0
        assert abs(result[key] - expected[key]) <= bound + FLOAT64, (key, result[key], expected[key], bound)


@pytest.fixture(scope="module")
def set_of_maps() -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth maps of both signs (and some -0.0 and exact ties) that favour the anomalies, 30 images."""
    _, masks = ac.data.anomalies(30, size=32, random_state=5, share=0.5)
    g = torch.Generator().manual_seed(1)
    noise = torch.nn.functional.avg_pool2d(torch.randn(30, 1, 32, 32, generator=g), 3, 1, 1)[:, 0]
    maps = noise + 0.6 * masks.float()
    maps[:, :4, :4] = 0.0
    maps[:, 4:6, :4] = -0.0
    return maps, masks


def test_streamed_float32_is_within_its_bound(set_of_maps):
    maps, masks = set_of_maps
    result = streamed(maps, masks, [1, 8, 9, 20])
    assert not result["exact"]
    assert_within(result, reference(maps, masks))
    # The bound is a working one here: bins of 2**-11 relative width over continuous values.
    assert 0 < result["pixel_auroc_bound"] < 1e-3 and 0 < result["aupro_bound"] < 1e-3
    assert result["images"] == 30 and result["abnormal_images"] == int(masks.flatten(1).any(1).sum())
    assert result["regions"] == ac.metrics.anomaly.region_labels(masks)[1]


def test_streamed_float16_values_are_exact(set_of_maps):
    maps, masks = set_of_maps
    maps = maps.half().float()
    result = streamed(maps, masks, [13])
    assert result["exact"] and result["pixel_auroc_bound"] == 0 and result["aupro_bound"] == 0
    assert_within(result, reference(maps, masks))
    assert streamed(maps.double(), masks, [])["exact"]
    # float64 values that round to float16 ones through float32 are not float16 values: not exact.
    assert not streamed(maps.double() + 2.0**-40, masks, [])["exact"]


def test_bound_is_reached_when_a_bin_splits_the_classes():
    """Normal pixels at 1.0, anomalous ones at 1 + 2**-23 (one bin): exact AUROC 1, binned 0.5, bound 0.5."""
    maps = torch.ones(2, 4, 4)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[1, 1:3, 1:3] = True
    maps[masks] = 1 + 2**-23
    result = streamed(maps, masks, [1])
    assert ac.metrics.pixel_auroc(maps, masks) == 1.0
    assert result["pixel_auroc"] == 0.5 and result["pixel_auroc_bound"] == 0.5
    assert result["image_auroc"] == 1.0  # the maxima are kept exactly


def test_undefined_metrics_are_none():
    maps = torch.rand(3, 8, 8)
    result = streamed(maps, torch.zeros(3, 8, 8, dtype=torch.bool), [2])
    assert all(result[k] is None for k in (*KEYS, "pixel_auroc_bound", "aupro_bound"))
    assert result["images"] == 3 and result["regions"] == 0


@pytest.mark.parametrize(
    ("maps", "masks", "message"),
    [
        (torch.full((2, 8, 8), float("nan")), torch.zeros(2, 8, 8, dtype=torch.bool), "NaN or inf"),
        (torch.rand(2, 8, 8), torch.zeros(2, 4, 4, dtype=torch.bool), "do not fit maps"),
        (torch.rand(2, 8, 8), torch.full((2, 8, 8), 3), "only 0 and 1"),
    ],
)
def test_bad_batches_are_refused(maps, masks, message):
    with pytest.raises(ValueError, match=message):
        AnomalyAccumulator().update(maps, masks)


def _write_set(root, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """24 textures of 32x32 as PNG files, their masks as 0/1 PNGs at the same relative paths."""
    x, masks = ac.data.anomalies(24, size=32, random_state=7, share=share)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(len(x)):
        rgb = np.round(x[i].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), rgb[..., ::-1])
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), masks[i].numpy().astype(np.uint8))
    (root / "tinyae.py").write_text(MODEL)
    return x, masks


def _run(root, out: str, float16: bool, monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(root))
    return run(
        "tinyae:build",
        str(root / "images"),
        ["gradcam", "saliency"],
        "recon-error",
        root / out,
        layer="encoder.3",
        masks=str(root / "masks"),
        chunk_size=5,
        batch_size=4,
        workers=0,
        float16=float16,
        progress=False,
    )


@pytest.mark.parametrize("float16", [False, True], ids=["float32", "float16"])
def test_run_scores_the_set_from_its_store(tmp_path, monkeypatch, capsys, float16):
    _, masks = _write_set(tmp_path, share=0.5)
    summary = _run(tmp_path, "store", float16, monkeypatch)
    printed = capsys.readouterr().out
    store = open_run(tmp_path / "store")
    metrics = summary["set_metrics"]
    assert metrics["samples"] == 24 and metrics["unreadable"] == 0
    assert json.loads((tmp_path / "store" / "summary.json").read_text())["set_metrics"] == metrics
    assert [int(i[:3]) for i in store.ids] == list(range(24))
    for k, column in enumerate(store.targets):
        maps = torch.from_numpy(np.asarray(store.maps[:, k]).astype(np.float32))
        result = metrics["columns"][column]
        assert result["exact"] is float16
        assert_within(result, reference(maps, masks))
        assert f"{column}: pixel AUROC {result['pixel_auroc']:.4f}" in printed


def test_run_with_all_normal_masks_reports_undefined(tmp_path, monkeypatch, capsys):
    _write_set(tmp_path, share=0.0)
    summary = _run(tmp_path, "normal", False, monkeypatch)
    assert "pixel AUROC undefined, AUPRO undefined, image AUROC undefined" in capsys.readouterr().out
    text = (tmp_path / "normal" / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    for result in summary["set_metrics"]["columns"].values():
        assert all(result[k] is None for k in KEYS), result
        assert result["abnormal_images"] == 0 and result["images"] == 24
    assert not any(
        isinstance(v, float) and math.isnan(v) for r in summary["set_metrics"]["columns"].values() for v in r.values()
    )
