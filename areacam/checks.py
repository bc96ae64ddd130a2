"""Argument checks shared by the library, the reference models and the application.

Each check names the argument and the offending value: ``TypeError`` for the wrong kind of value,
``ValueError`` for one out of range.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["check_int", "check_positive"]


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
