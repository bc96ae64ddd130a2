"""The ``--labels`` table of ``areacam run``: each file's label and the per-sample columns that
``--forward-arg NAME=column:COLUMN`` hands to the model."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from areacam.app.loading import InputError
from areacam.app.nifti import without_suffix

__all__ = ["Columns", "read_cell", "read_labels"]

#: Per-sample ``--labels`` columns: ``{column: value per file}`` (``None`` where the table has no row).
Columns = dict[str, list[int | float | None]]


def read_labels(path: Path, files: list[str], columns: Sequence[str] = ()) -> tuple[list[int] | None, Columns]:
    """Labels and per-sample columns from a CSV with a header: an id column (``id``, ``path``, ``file`` or
    ``image``), ``label`` and the ``columns`` asked for (``--forward-arg NAME=column:COLUMN``).

    ``label`` may be missing only when ``columns`` are asked for (then there are no labels, ``None``). A
    file without a row has label -1 and ``None`` in each column. A column holds ints when every value
    is one, else floats.
    """
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"--labels {str(path)!r}: not a readable CSV ({err})") from None
    fields = list(rows[0].keys()) if rows else []
    key = next((k for k in ("id", "path", "file", "image") if k in fields), None)
    if key is None or ("label" not in fields and not columns):
        raise InputError(
            f"--labels {str(path)!r}: needs a header with an id column (id, path, file or image) and 'label'; "
            f"got {fields}"
        )
    missing = [c for c in columns if c not in fields]
    if missing:
        raise InputError(f"--labels {str(path)!r} has no column {missing[0]!r} (--forward-arg); columns: {fields}")
    table: dict[str, int] = {}
    values: dict[str, dict[str, int | float]] = {c: {} for c in columns}
    for n, row in enumerate(rows, start=2):
        name = (row[key] or "").strip()
        if "label" in fields:
            try:
                table[name] = int(row["label"])
            except (TypeError, ValueError):
                raise InputError(f"--labels {str(path)!r} line {n}: label {row['label']!r} is not an int") from None
        for column in columns:
            values[column][name] = read_cell(row[column], column, n, path)
    for column in columns:  # ints stay ints only if the whole column is
        if not all(isinstance(v, int) for v in values[column].values()):
            values[column] = {k: float(v) for k, v in values[column].items()}

    def per_file(found: dict[str, Any], default: Any) -> list[Any]:
        stems = {without_suffix(k): v for k, v in found.items()}
        return [found.get(rel, stems.get(without_suffix(rel), default)) for rel in files]

    labels = per_file(table, -1) if "label" in fields else None
    return labels, {column: per_file(values[column], None) for column in columns}


def read_cell(text: str | None, column: str, line: int, path: Path) -> int | float:
    """One number of a ``--labels`` column: an int, else a finite float."""
    text = (text or "").strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise InputError(f"--labels {str(path)!r} line {line}: column {column!r} value {text!r} is not a finite number")
    return value
