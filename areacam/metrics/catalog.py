"""What each metric is: its name, category, direction and whether it needs ground truth.

A metric declares this once, where it is defined, with :func:`describe`; rankings, the evaluation
report and the command line read it here (``METRICS[name].higher_is_better``), never from a list kept
elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["CATEGORIES", "METRICS", "MetricInfo", "describe", "names"]

#: The categories of :attr:`MetricInfo.category`, in report order.
CATEGORIES = ("faithfulness", "localisation", "complexity")

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class MetricInfo:
    """One metric: ``higher_is_better`` (deletion AUC: lower is better); ``needs_masks``: it compares maps
    with ground-truth masks; ``layer_ranking``: :func:`~areacam.metrics.rank_layers` can rank by it."""

    name: str
    category: str
    higher_is_better: bool
    needs_masks: bool = False
    layer_ranking: bool = True
    per_set: bool = False


#: Every described metric by name, in definition order.
METRICS: dict[str, MetricInfo] = {}


def describe(
    name: str,
    category: str,
    higher_is_better: bool,
    needs_masks: bool = False,
    layer_ranking: bool = True,
    per_set: bool = False,
) -> Callable[[F], F]:
    """Decorator: record the metric ``name`` (see :class:`MetricInfo`); the function is returned unchanged."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown metric category {category!r}; choose from {CATEGORIES}")

    def record(fn: F) -> F:
        METRICS[name] = MetricInfo(name, category, higher_is_better, needs_masks, layer_ranking, per_set)
        return fn

    return record


def names(
    category: str | None = None,
    needs_masks: bool | None = None,
    layer_ranking: bool | None = None,
    per_set: bool | None = False,
) -> tuple:
    """Metric names in definition order, filtered by category, ground truth, rankability and whether the
    metric scores a whole set (``per_set=False``, the default: the per-map metrics only; ``None``: all)."""
    return tuple(
        info.name
        for info in METRICS.values()
        if (category is None or info.category == category)
        and (needs_masks is None or info.needs_masks == needs_masks)
        and (layer_ranking is None or info.layer_ranking == layer_ranking)
        and (per_set is None or info.per_set == per_set)
    )
