"""Writing a run store (:mod:`areacam.runs.reader` describes its layout): create or check it, commit a
chunk, write the table. Every file goes through :func:`~areacam._util.io.atomic_write` with
``durable=True``: fsynced and renamed into place, so a killed process leaves only committed chunks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from areacam._util.io import atomic_write, fsync_path
from areacam._util.optional import maybe, require
from areacam.runs.reader import FORMAT, chunk_name, done_chunks, read_json, table_columns

__all__ = ["FORMAT", "StoreMismatch", "commit_chunk", "prepare_store", "write_table"]


class StoreMismatch(ValueError):
    """The store holds a run with other arguments (or is not a run store); the message says what differs."""


_DERIVED = ("columns", "chunks", "ids", "ids_sha256", "samples")
_NOT_COMPARED = ("info",)  # where the run came from (e.g. the weights' path): the checksums decide


def _differences(old: dict, new: dict) -> list[str]:
    keys = dict.fromkeys([*new, *old])
    diffs = [
        f"{k}: {old.get(k)!r} in the store, {new.get(k)!r} now"
        for k in keys
        if k not in (*_DERIVED, *_NOT_COMPARED) and old.get(k) != new.get(k)
    ]
    if not diffs and old.get("ids_sha256") != new.get("ids_sha256"):
        diffs.append(
            f"the samples differ ({old.get('samples')} in the store, {new.get('samples')} now, "
            "or files added, removed or renamed)"
        )
    diffs += [f"{k} differs" for k in keys if k in _DERIVED and old.get(k) != new.get(k) and not diffs]
    return diffs


def prepare_store(store: Path, config: dict, shape: tuple[int, ...], chunk_size: int, dtype: str) -> set[int]:
    """Create the store for ``config`` or check that the one there was made with the same arguments.

    Returns the committed chunk numbers. ``StoreMismatch`` if the folder holds another run or other files;
    ``PermissionError``/``OSError`` if it cannot be written.
    """
    store = Path(store)
    run_json = store / "run.json"
    if run_json.is_file():
        old = read_json(run_json)
        diffs = _differences(old, config)
        if diffs:
            raise StoreMismatch(
                f"{str(store)!r} holds a run with other arguments ({'; '.join(diffs[:4])}); "
                "rerun with the same arguments to resume, or choose another --out"
            )
        return done_chunks(store)
    if store.exists() and not store.is_dir():
        raise StoreMismatch(f"--out {str(store)!r} exists and is not a folder")
    leftovers = [p.name for p in store.iterdir()] if store.is_dir() else []
    if any(name not in ("zarr.json", "maps", "manifest") for name in leftovers):
        raise StoreMismatch(f"--out {str(store)!r} is a folder with other files in it; choose a new or empty folder")
    zarr = require("zarr", "a run store")
    ZstdCodec = require("zarr.codecs", "a run store").ZstdCodec

    store.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(store, mode="w")
    root.create_array(
        "maps",
        shape=shape,
        chunks=(chunk_size, *shape[1:]),
        dtype=dtype,
        fill_value=0,
        compressors=ZstdCodec(level=3),
        dimension_names=("sample", "map", *("z", "y", "x")[5 - len(shape) :]),  # (N, K, [z,] y, x)
    )
    (store / "manifest").mkdir(exist_ok=True)
    atomic_write(run_json, json.dumps(config, indent=1), durable=True)
    return set()


def commit_chunk(
    store: Path, array: Any, chunk: int, start: int, maps: np.ndarray, rows: list[dict], rank: int
) -> None:
    """Write one chunk's maps, fsync them, then commit its manifest entry atomically."""
    array[start : start + len(maps)] = maps
    folder = Path(store) / "maps" / "c" / str(chunk)
    for path in folder.rglob("*"):
        if path.is_file():
            fsync_path(path)
    entry = {"chunk": chunk, "start": start, "stop": start + len(maps), "rank": rank, "rows": rows}
    atomic_write(Path(store) / "manifest" / chunk_name(chunk), json.dumps(entry), durable=True)


def write_table(store: Path, rows: list[dict]) -> str:
    """Write the explained samples' rows as ``table.parquet`` (pyarrow) or ``table.csv``; returns the name."""
    columns = table_columns([row for row in rows if not row.get("error")])
    pa, pq = maybe("pyarrow"), maybe("pyarrow.parquet")
    if pa is None or pq is None:
        import csv
        import io

        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(list(columns))
        writer.writerows(zip(*[col.tolist() for col in columns.values()]))
        atomic_write(Path(store) / "table.csv", text.getvalue(), durable=True)
        return "table.csv"
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({k: pa.array(v.tolist()) for k, v in columns.items()}), sink)
    atomic_write(Path(store) / "table.parquet", sink.getvalue().to_pybytes(), durable=True)
    return "table.parquet"
