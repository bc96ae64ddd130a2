"""The chunk loop of a run: each process explains its chunks batch by batch and commits each chunk (its
maps, then its manifest entry) when its last sample is done."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from areacam._util.optional import require
from areacam._util.progress import progress_bar
from areacam.app.run.datasets import RunData, collate
from areacam.app.run.distributed import Distributed
from areacam.app.run.work import METRICS, ChunkBatches, Work, chunk_len
from areacam.runs.reader import done_chunks
from areacam.runs.writer import commit_chunk

__all__ = ["Log", "explain_chunks", "row_of"]


class Log:
    """``STORE/run.log``: one line per event, appended by every process; echoed on stderr."""

    def __init__(self, path: Path, rank: int, echo: bool):
        self.path, self.rank, self.echo = path, rank, echo

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} rank {self.rank}: {message}\n"
        with open(self.path, "a") as f:
            f.write(line)
        if self.echo:
            print(f"areacam run: {message}", file=sys.stderr)


@dataclass
class Chunk:
    """The chunk being filled: its maps, its rows by sample index, and how many of its samples were seen."""

    number: int
    first: int
    length: int
    maps: np.ndarray
    rows: dict[int, dict] = field(default_factory=dict)
    seen: int = 0

    @property
    def complete(self) -> bool:
        return self.seen == self.length


def row_of(data: RunData, index: int, label: int = -1, error: str | None = None) -> dict:
    """A sample's row of the table: its id, index and path, and its label or why it was skipped."""
    row: dict[str, Any] = {"id": data.ids[index], "index": index, "path": data.paths[index]}
    if error is not None:
        row["error"] = error
        return row
    row["label"] = label
    return row


def explain_chunks(
    dist: Distributed,
    dev: torch.device,
    store: Path,
    data: RunData,
    work: Work,
    mine: list[int],
    pending: list[int],
    config: dict,
    log: Log,
    batch_size: int,
    workers: int,
    progress: bool,
) -> float:
    """Explain this rank's chunks, committing each when its last sample is done; returns the seconds spent."""
    zarr = require("zarr", "areacam run")
    array = zarr.open_array(store / "maps", mode="r+")
    n, chunk_size = config["samples"], config["chunk_size"]
    dtype = np.dtype(config["dtype"])
    sampler = ChunkBatches(mine, chunk_size, min(batch_size, chunk_size), n)
    loader = DataLoader(
        data.dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )
    total_pending = sum(chunk_len(c, chunk_size, n) for c in pending)
    mine_total = sum(chunk_len(c, chunk_size, n) for c in mine)
    lead = dist.rank == 0
    already = set(range(config["chunks"])) - set(pending)
    current: Chunk | None = None
    start = time.perf_counter()
    desc = "total" if lead and dist.world > 1 else f"rank {dist.rank}" if dist.world > 1 else "areacam run"
    with progress_bar(
        total_pending if lead else mine_total,
        desc,
        enabled=progress,
        unit="img",
        leave=lead,
        position=dist.rank if dist.world > 1 else None,
        file=sys.stderr,
    ) as bar:
        for batch in loader:
            indices = batch["index"] + [i for i, _ in batch["bad"]]
            number = min(indices) // chunk_size
            if current is None or current.number != number:
                length = chunk_len(number, chunk_size, n)
                maps = np.zeros((length, len(work.columns), *config["size"]), dtype=dtype)
                current = Chunk(number, number * chunk_size, length, maps)
            _explain_batch(batch, current, data, work, dev, log)
            current.seen += len(indices)
            if current.complete:
                rows = [current.rows[i] for i in sorted(current.rows)]
                commit_chunk(store, array, current.number, current.first, current.maps, rows, dist.rank)
                current = None
            if lead and dist.world > 1:
                committed = done_chunks(store) - already
                bar.n = sum(chunk_len(c, chunk_size, n) for c in committed)
                bar.refresh()
            else:
                bar.update(len(indices))
    return time.perf_counter() - start


def _explain_batch(batch: dict, chunk: Chunk, data: RunData, work: Work, dev: torch.device, log: Log) -> None:
    """Explain one batch into ``chunk``: maps and rows of the readable samples, a row for each skipped one."""
    for index, error in batch["bad"]:
        log(f"skipped {error}")
        chunk.rows[index] = row_of(data, index, error=error)
    keep = list(range(len(batch["index"])))
    if work.needs_label and batch["label"] is not None:
        for j in [j for j in keep if int(batch["label"][j]) < 0]:
            index = batch["index"][j]
            error = f"{data.paths[index] or data.ids[index]}: no label for a per-sample target"
            log(f"skipped {error}")
            chunk.rows[index] = row_of(data, index, error=error)
        keep = [j for j in keep if int(batch["label"][j]) >= 0]
    if not keep:
        return
    x = batch["image"][keep].to(dev, non_blocking=True)
    masks = None if batch["mask"] is None else batch["mask"][keep]
    columns = {name: values[keep] for name, values in batch["columns"].items()}
    result = work(x, batch["label"][keep], masks, columns)
    for b, j in enumerate(keep):
        index = batch["index"][j]
        chunk.maps[index - chunk.first] = result["maps"][b]
        row = row_of(data, index, label=int(batch["label"][j]))
        for c in range(len(work.columns)):
            row[f"score_{c}"] = float(result["score"][b, c])
            row[f"degenerate_{c}"] = bool(result["degenerate"][b, c])
            for name in work.metrics:
                row[f"{METRICS[name]}_{c}"] = float(result[METRICS[name]][b, c])
        for c in work.error_columns:
            row[f"error_pixels_{c}"] = float(result["error_pixels"][b, c])
        chunk.rows[index] = row
