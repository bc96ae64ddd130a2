"""Means that know when they are undefined: the averages every metric's summary and table reports."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["defined_mean", "masked_mean", "number", "numbers"]


def masked_mean(values: Tensor, valid: Tensor | None = None, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``values`` over ``dim`` counting only ``valid`` entries (0 where none is valid).

    Use :func:`defined_mean` where "no valid entry" must read as undefined, not as 0.
    """
    return defined_mean(values, valid, dim)[0]


def defined_mean(
    values: Tensor, valid: Tensor | None = None, dim: int | tuple[int, ...] | None = None
) -> tuple[Tensor, Tensor]:
    """``(mean, defined)``: the mean of the ``valid`` entries over ``dim`` (0 where there is none) and
    whether there was one (``defined``, bool)."""
    values = values.float()
    valid = torch.ones_like(values, dtype=torch.bool) if valid is None else valid.expand_as(values)
    dims = tuple(range(values.dim())) if dim is None else dim
    total = torch.where(valid, values, 0.0).sum(dims)
    count = valid.sum(dims)
    return torch.where(count > 0, total / count.clamp(min=1), 0.0), count > 0


def number(value: Tensor | float, defined: Tensor | bool = True) -> float | None:
    """A plain float for JSON and tables, ``None`` where the value is undefined."""
    return float(value) if bool(defined) else None


def numbers(values: Tensor, defined: Tensor) -> list:
    """``values.tolist()`` with ``None`` where ``defined`` is False (one or more dims)."""
    return [numbers(v, d) if v.dim() else number(v, d) for v, d in zip(values, defined)]
