"""The store of a dataset run and its reader: maps in a zarr v3 array, one manifest entry per committed
chunk, a table.

Layout of a store folder ``STORE``::

    zarr.json                   zarr v3 group
    maps/                       zarr array (N, K, H, W), chunked by sample: one chunk = ``chunk_size`` samples
    run.json                    the run's arguments and sample ids (a rerun must match them)
    manifest/chunk-000012.json  one file per committed chunk: its rows (ids, scores, metrics, paths, errors)
    run.log                     skipped samples and resumptions, one line each, from every process
    table.parquet | table.csv   all rows, written once every chunk is committed
    summary.json                counts, written last

The manifest is the source of truth. A chunk is committed by writing its maps (zarr writes a temp file
and renames it), fsyncing them, then writing its manifest entry to a temp file, fsyncing and renaming
it: a process killed at any moment leaves at most the chunks it was writing uncommitted, and a reader
never sees maps whose entry is missing. :func:`open_run` reads only manifest-listed chunks.

zarr, pyarrow and pandas are optional (``pip install 'areacam[run]'``); they are imported when used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from areacam._util.optional import maybe, require

__all__ = [
    "FORMAT",
    "Run",
    "RunMaps",
    "chunk_name",
    "done_chunks",
    "manifest_entries",
    "open_run",
    "read_json",
    "table_columns",
]

FORMAT = "areacam-run/1"


def chunk_name(chunk: int) -> str:
    return f"chunk-{chunk:06d}.json"


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def manifest_entries(store: Path) -> Iterator[dict]:
    """Every committed chunk's manifest entry, in chunk order (temp files are ignored)."""
    folder = Path(store) / "manifest"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("chunk-*.json")):
        yield read_json(path)


def done_chunks(store: Path) -> set[int]:
    """Chunk numbers with a manifest entry."""
    folder = Path(store) / "manifest"
    if not folder.is_dir():
        return set()
    return {int(p.name[6:12]) for p in folder.glob("chunk-*.json")}


class RunMaps:
    """Lazy ``(N, K, H, W)`` maps of a run: indexing reads only the chunks it needs.

    Row ``i`` is the map of sample ``ids[i]``. Index with an int, a slice or a sequence of ints
    (optionally followed by indices of the other axes); ``np.asarray(maps)`` reads everything.
    """

    def __init__(self, array: Any, rows: np.ndarray):
        self._array = array
        self._rows = np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._rows), *self._array.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self._rows)

    def __repr__(self) -> str:
        return f"RunMaps(shape={self.shape}, dtype={self.dtype})"

    def __getitem__(self, key: Any) -> np.ndarray:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)):
            n = len(self._rows)
            if not -n <= int(first) < n:
                raise IndexError(f"sample index {int(first)} out of range for {n} samples")
            return self._read(self._rows[[int(first)]], rest)[0]
        if isinstance(first, slice):
            rows = self._rows[first]
        else:
            positions = np.asarray(first)
            if positions.dtype == bool:
                if positions.shape != self._rows.shape:
                    raise IndexError(f"boolean index of shape {positions.shape} for {len(self._rows)} samples")
            elif not np.issubdtype(positions.dtype, np.integer):
                raise TypeError(f"index samples with ints, a slice or a sequence of ints, got {first!r}")
            rows = self._rows[positions]
        return self._read(rows, rest)

    def _read(self, rows: np.ndarray, rest: tuple) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, *self._array.shape[1:]), dtype=self.dtype)[_all_rows(rest)]
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        start, stop = int(sorted_rows[0]), int(sorted_rows[-1]) + 1
        if stop - start == len(rows) and (np.diff(sorted_rows) == 1).all():
            block = self._array[start:stop]
        else:
            block = self._array.get_orthogonal_selection((sorted_rows,))
        out = np.empty_like(block)
        out[order] = block
        return out[_all_rows(rest)]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]


def _all_rows(rest: tuple) -> tuple:
    """The index of every row, then ``rest``: ``(slice(None), *rest)``."""
    return (slice(None), *rest)


class Run:
    """A dataset run opened by :func:`open_run`.

    Attributes:
        path: the store folder.
        config: the run's arguments (``run.json``).
        targets: the ``K`` explained columns, ``"METHOD TARGET-SPEC"`` each.
        ids: the ``N`` explained sample ids (relative paths, or dataset indices), in dataset order.
        maps: :class:`RunMaps`, lazy ``(N, K, H, W)``.
        table: per-sample scores, metrics and paths: a pandas ``DataFrame`` (a dict of arrays without pandas).
        skipped: samples that could not be read, ``{"index", "id", "path", "error"}`` each.
        complete: every chunk is committed.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.config = read_json(self.path / "run.json")
        entries = list(manifest_entries(self.path))
        self.chunks = len(entries)
        rows = [row for entry in entries for row in entry["rows"]]
        self.skipped = [row for row in rows if row.get("error")]
        good = [row for row in rows if not row.get("error")]
        self.targets: list[str] = list(self.config["columns"])
        self.ids: list[str] = [row["id"] for row in good]
        self.complete = self.chunks == self.config["chunks"]
        zarr = require("zarr", "a run store")
        self.maps = RunMaps(zarr.open_array(self.path / "maps", mode="r"), np.array([r["index"] for r in good]))
        self._rows = good
        self._table: Any = None

    @property
    def summary(self) -> dict | None:
        """``summary.json`` once the run has finished, else ``None``."""
        path = self.path / "summary.json"
        return read_json(path) if path.is_file() else None

    @property
    def table(self) -> Any:
        if self._table is None:
            columns = table_columns(self._rows)
            pandas = maybe("pandas")
            self._table = columns if pandas is None else pandas.DataFrame(columns)
        return self._table

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"{self.chunks}/{self.config['chunks']} chunks"
        return f"Run({str(self.path)!r}, {len(self.ids)} samples, {len(self.targets)} maps each, {state})"


def table_columns(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """The rows of explained samples as columns (the manifest's per-sample fields, minus ``error``)."""
    names: list[str] = []
    for row in rows[:1]:
        names = [k for k in row if k != "error"]
    return {name: np.array([row[name] for row in rows]) for name in names} if rows else {}


def open_run(path: str | os.PathLike) -> Run:
    """Open the store an ``areacam run`` wrote (also while it runs, or after it was killed).

    Only chunks listed in the manifest are read. Raises ``FileNotFoundError`` if ``path`` holds no run
    and ``ImportError`` (naming ``areacam[run]``) if zarr is missing.
    """
    store = Path(path)
    if not (store / "run.json").is_file():
        raise FileNotFoundError(f"{str(store)!r} is not an areacam run store (no run.json)")
    config = read_json(store / "run.json")
    if config.get("format") != FORMAT:
        raise ValueError(f"{str(store)!r} has format {config.get('format')!r}; this areacam reads {FORMAT!r}")
    return Run(store)
