"""Argument checks shared by the library, the reference models and the application.

Each check names the argument and the offending value: ``TypeError`` for the wrong kind of value,
``ValueError`` for one out of range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["BOX_NAMES", "Box", "check_box", "check_int", "check_positive"]

Box = tuple[int, ...]

#: How a box is written, by its number of spatial dims.
BOX_NAMES = {1: "(start, stop)", 2: "(top, left, bottom, right)", 3: "(z0, y0, x0, z1, y1, x1)"}


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum`` (bools are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive(name: str, value: object) -> float:
    """``value`` as a finite float ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be > 0 and finite, got {value}")
    return float(value)


def check_box(box: Sequence[int]) -> Box:
    """A box as ints: one ``(start, stop)`` pair per spatial dim, starts first (``ValueError``).

    ``(start, stop)`` for signals, ``(top, left, bottom, right)`` for images, ``(z0, y0, x0, z1, y1,
    x1)`` for volumes; stops are exclusive, like slicing. Checked non-negative and non-empty.
    """
    if (
        isinstance(box, (str, bytes))
        or not isinstance(box, Sequence)
        or len(box) not in (2, 4, 6)
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in box)
    ):
        raise ValueError(
            f"box must be 4 ints {BOX_NAMES[2]} for an image, 6 {BOX_NAMES[3]} for a volume or 2 "
            f"{BOX_NAMES[1]} for a signal, got {box!r}"
        )
    values = tuple(int(v) for v in box)
    half = len(values) // 2
    starts, stops = values[:half], values[half:]
    if any(v < 0 for v in starts):
        raise ValueError(f"box {box!r} has a negative corner")
    if any(stop <= start for start, stop in zip(starts, stops)):
        raise ValueError(f"box {box!r} is empty: each stop is exclusive and must exceed its start")
    return values
