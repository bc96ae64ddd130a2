"""The set-level anomaly metrics of a finished run: pixel AUROC, AUPRO and image AUROC of each column,
streamed from the store.

When the dataset carries masks, the end of a run reads the stored maps back chunk by chunk (only the
samples the manifest lists as explained) with each sample's mask (``mask > 0``, at the run's size, read
again from the dataset) and feeds them to one :class:`~areacam.metrics.anomaly_stream.AnomalyAccumulator`
per column: memory holds one chunk and 24 MB per column (fewer columns per pass when ``max_memory`` is
smaller), whatever the set's size. Pixel AUROC and AUPRO are exact for a ``--float16`` store and within
the reported ``*_bound`` otherwise (see that module); image AUROC is exact.

The stored maps are an explanation's ``maps``: normalised to ``[0, 1]`` per image. Pixel AUROC and AUPRO
then rank pixels within and across images by their normalised values; image AUROC from each map's
maximum is uninformative (every non-constant map peaks at 1): it is reported as computed, and the
table's ``score_*`` columns are the per-image scores to rank images by.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from areacam._util.optional import require
from areacam.app.run.datasets import RunData, collate
from areacam.metrics.anomaly_stream import BINS, AnomalyAccumulator
from areacam.runs.reader import manifest_entries

__all__ = ["FPR_LIMIT", "describe_set_metrics", "set_metrics"]

#: The false-positive rate AUPRO integrates to (MVTec AD's).
FPR_LIMIT = 0.3
_ACCUMULATOR_BYTES = 3 * 8 * BINS


def set_metrics(store: Path, data: RunData, columns: list[str], max_memory: int, workers: int = 0) -> dict:
    """``{"columns": {column: AnomalyAccumulator.result()}, "samples", "unreadable"}``: every column's
    metrics, how many explained samples were scored, and how many were left out because their image or
    mask could not be read again. A column whose stored maps hold non-finite values gets
    ``{"error": why}`` instead of metrics."""
    zarr = require("zarr", "areacam run")
    array = zarr.open_array(Path(store) / "maps", mode="r")
    entries = list(manifest_entries(store))
    per_pass = max(1, int(max_memory) // _ACCUMULATOR_BYTES)
    out: dict[str, dict] = {}
    scored = unreadable = 0
    for first in range(0, len(columns), per_pass):
        group = list(range(first, min(len(columns), first + per_pass)))
        accumulators: list[AnomalyAccumulator | None] = [AnomalyAccumulator() for _ in group]
        errors: dict[int, str] = {}
        scored = unreadable = 0
        batches = [[r["index"] for r in e["rows"] if not r.get("error")] for e in entries]
        loader = DataLoader(
            data.dataset, batch_sampler=[b for b in batches if b], collate_fn=collate, num_workers=workers
        )
        for batch in loader:
            unreadable += len(batch["bad"])
            if not batch["index"] or batch["mask"] is None:
                unreadable += len(batch["index"])
                continue
            rows = np.asarray(batch["index"])
            start = int(rows.min())
            block = np.asarray(array[start : int(rows.max()) + 1])[rows - start]  # (B, K, H, W), one chunk
            masks = batch["mask"] > 0
            for j, column in enumerate(group):
                acc = accumulators[j]
                if acc is None:
                    continue
                try:
                    acc.update(torch.from_numpy(block[:, column]), masks)
                except ValueError as err:  # non-finite maps: this column has no set metrics
                    errors[column], accumulators[j] = str(err), None
            scored += len(rows)
        for acc, column in zip(accumulators, group):
            out[columns[column]] = {"error": errors[column]} if acc is None else acc.result(FPR_LIMIT)
    return {"samples": scored, "unreadable": unreadable, "columns": out}


def describe_set_metrics(scores: dict | None) -> list[str]:
    """One line per column of :func:`set_metrics`' result for the terminal (``undefined`` for ``None``)."""
    if not scores:
        return []

    def text(value: object, bound: object = None) -> str:
        if value is None:
            return "undefined"
        return f"{value:.4f}" + (f" (+-{bound:.1e})" if bound else "")

    lines = []
    for column, r in scores["columns"].items():
        if "error" in r:
            lines.append(f"{column}: no set metrics ({r['error']})")
            continue
        lines.append(
            f"{column}: pixel AUROC {text(r['pixel_auroc'], r['pixel_auroc_bound'])}, AUPRO "
            f"{text(r['aupro'], r['aupro_bound'])}, image AUROC {text(r['image_auroc'])} over {r['images']} "
            f"images ({r['abnormal_images']} abnormal)"
        )
    return lines
