"""``--forward-arg NAME=VALUE``: extra keyword arguments of the model's forward, from the command line.

A VALUE is read as, in this order:

- ``true`` / ``false``: a bool (``interpolate_pos_encoding=true``);
- an int (``timestep=10``) or a float (``guidance=7.5``), passed as a Python number, the same for every
  sample;
- a comma-separated list of numbers, one per sample (``y=1,7,3`` for three ``--image`` files): a ``(B,)``
  tensor (int64 when every value is an int, else float32), per sample, so it follows each image through
  the method's perturbations;
- for ``areacam run`` only, ``column:NAME``: each sample's value from column ``NAME`` of the ``--labels``
  table (a per-sample ``(B,)`` tensor per batch).

Anything else is refused: a string could mean a path, a dtype or a name, and the command does not guess.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

import torch

from areacam.app.loading import InputError
from areacam.core.forward import check_rows

__all__ = ["COLUMN", "FORWARD_ARG_HELP", "RUN_FORWARD_ARG_HELP", "add_forward_arg", "is_column", "parse_forward_args"]

#: The prefix of a per-sample table column (``areacam run``).
COLUMN = "column:"

FORWARD_ARG_HELP = (
    "extra keyword argument of the model's forward, e.g. timestep=10, y=1,7,3 (one per image), "
    "interpolate_pos_encoding=true"
)

RUN_FORWARD_ARG_HELP = (
    "extra keyword argument of the model's forward, the same for every sample (timestep=10, "
    "interpolate_pos_encoding=true) or per sample from a column of the --labels table (y=column:label)"
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT = re.compile(r"[+-]?\d+\Z")


def add_forward_arg(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str = FORWARD_ARG_HELP
) -> None:
    """Add ``--forward-arg NAME=VALUE [NAME=VALUE ...]`` (repeatable) to ``parser``."""
    parser.add_argument("--forward-arg", nargs="+", action="extend", default=[], metavar="NAME=VALUE", help=help_text)


def _number(text: str, item: str) -> int | float:
    if _INT.match(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"--forward-arg {item!r}: {text!r} is not a number, true/false or a comma-separated list of numbers"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise InputError(f"--forward-arg {item!r}: {text!r} is not a finite number")
    return value


def _value(text: str, item: str, batch: int | None) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," not in text:
        return _number(text, item)
    values = [_number(part.strip(), item) for part in text.split(",")]
    if all(isinstance(v, int) for v in values):
        tensor = torch.tensor(values, dtype=torch.long)
    else:
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float32)
    if batch is None:
        raise InputError(f"--forward-arg {item!r}: a list of values is one per sample; this command takes one value")
    try:
        check_rows(item.split("=", 1)[0], tensor, batch)
    except ValueError as err:
        raise InputError(f"--forward-arg {item!r}: {err} (one value per image)") from None
    return tensor


def is_column(value: Any) -> bool:
    """Whether a forward-argument value names a ``--labels`` column (``"column:NAME"``)."""
    return isinstance(value, str) and value.startswith(COLUMN)


def parse_forward_args(items: list[str] | None, batch: int | None, columns: bool = False) -> dict[str, Any]:
    """``{name: value}`` from the ``NAME=VALUE`` items; ``batch`` is the number of images (lists need it).

    ``columns=True`` (``areacam run``) keeps ``column:NAME`` values as the string, for the run to read
    per sample. Raises :class:`~areacam.app.loading.InputError` for a malformed item, a repeated name or
    a list of the wrong length.
    """
    found: dict[str, Any] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        if not sep or not _NAME.match(name) or not text:
            raise InputError(f"--forward-arg {item!r} must be NAME=VALUE, NAME a Python identifier")
        if name in found:
            raise InputError(f"--forward-arg {name!r} is given twice")
        if text.startswith(COLUMN):
            if not columns:
                raise InputError(f"--forward-arg {item!r}: column values are read from a run's --labels table")
            if not text[len(COLUMN) :]:
                raise InputError(f"--forward-arg {item!r}: name the column, e.g. {name}=column:label")
            found[name] = text
            continue
        found[name] = _value(text, item, batch)
    return found
