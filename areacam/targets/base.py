"""Targets: turn a model output into one score per sample, shape ``(B,)``.

A target is a small callable ``target(output, inputs) -> (B,)``. ``output`` is whatever the model
returned (tensor, tuple, dict); ``inputs`` is the explained ``(B, C, *spatial)`` batch: dense targets
read its number of spatial dims (1: signals, 2: images, 3: volumes) to read the output as
``(B, C, *spatial)``, and :class:`~areacam.ReconstructionError` compares against it. Every explainer
accepts one target or a list of ``K`` targets and evaluates all of them on the same forward pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from areacam.core.outputs import OutputSelector, select_output

__all__ = ["Samples", "Target", "as_target_list", "check_samples", "take_rows"]

Samples = int | Sequence[int] | Tensor


def check_samples(samples: Samples) -> int | list[int]:
    """``samples`` of :meth:`Target.bind` as an int or a list of ints (``TypeError``/``ValueError``)."""
    if isinstance(samples, Tensor):
        samples = samples.tolist()
    if isinstance(samples, (int, np.integer)) and not isinstance(samples, bool):
        return int(samples)
    if isinstance(samples, Sequence) and not isinstance(samples, str):
        values = list(samples)
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return [int(v) for v in values]
    raise TypeError(f"samples must be an int or a non-empty sequence of ints, got {samples!r}")


def take_rows(values: Tensor, samples: int | list[int], what: str) -> Tensor:
    """Rows ``samples`` of a per-sample tensor; an int drops the batch dim."""
    count = values.shape[0]
    wanted = [samples] if isinstance(samples, int) else samples
    bad = [v for v in wanted if not -count <= v < count]
    if bad:
        raise IndexError(f"sample {bad[0]} is out of range for {what} of {count} samples")
    return values[samples]


class Target(ABC):
    """Base class: ``target(output, inputs)`` returns a ``(B,)`` score tensor.

    A subclass implements :meth:`score` (and :meth:`bind` when it holds per-sample arguments or
    choices made from the output).

    ``field_seed``: the score reads nothing but the model output and the inputs, so its gradient with
    respect to the output (autograd through the target alone) is exact for fields
    (:mod:`areacam.methods.field`).
    """

    output: OutputSelector = None
    field_seed: bool = True

    @abstractmethod
    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        """Score of the selected output ``out``: ``(B,)``."""

    def select(self, output: Any) -> Tensor:
        """The part of the model output this target reads."""
        return select_output(output, self.output)

    def bind(self, samples: Samples, output: Any = None) -> Target:
        """This target for a new batch drawn from the samples it was written for.

        ``samples`` is one sample index (the new batch holds only copies or perturbations of that
        sample, any number of them) or a 1-D sequence of indices (sample ``i`` of the new batch is
        sample ``samples[i]`` of the original one). Per-sample arguments (a list of class indices,
        a ``(B, H, W)`` mask) are taken at those indices. With ``output``, the model output on the
        original batch, per-sample choices made from the output are frozen there: ``Class()``'s
        argmax and ``Segment``'s predicted pixels. The default returns the target itself.
        """
        check_samples(samples)
        return self

    def __call__(self, output: Any, inputs: Tensor) -> Tensor:
        scores = self.score(self.select(output), inputs)
        batch = inputs.shape[0]
        if not isinstance(scores, Tensor) or scores.shape != (batch,):
            shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
            raise ValueError(f"{self!r} returned scores of shape {shape}; expected ({batch},)")
        return scores


def as_target_list(targets: Target | Sequence[Target]) -> list[Target]:
    """Normalise one target or a sequence of them to a non-empty list, checking types."""
    if isinstance(targets, Target):
        return [targets]
    if targets is None or isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence):
        raise TypeError(
            f"targets must be a Target or a list of them, got {type(targets).__name__}; "
            "e.g. ac.Class(3) or [ac.Area(box=(0, 0, 8, 8))]"
        )
    targets = list(targets)
    if not targets:
        raise ValueError("no targets given: pass at least one Target")
    for target in targets:
        if not isinstance(target, Target):
            raise TypeError(f"{target!r} is not a Target; wrap a function as ac.Score(fn)")
    return targets
