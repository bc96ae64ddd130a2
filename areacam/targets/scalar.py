"""Targets of one number per sample: a class logit (:class:`Class`), a latent unit (:class:`Latent`)
and any score a function computes (:class:`Score`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from areacam.core.outputs import OutputSelector, select_output
from areacam.targets.base import Samples, Target, check_samples, take_rows

__all__ = ["Class", "Latent", "Score"]


class Class(Target):
    """``logits[:, index]`` of a ``(B, N)`` output; ``index=None``: each sample's argmax.

    ``index`` is an int or a sequence of exactly ``B`` ints (one per sample).
    """

    def __init__(self, index: int | Sequence[int] | Tensor | None = None, output: OutputSelector = None):
        if isinstance(index, Tensor):
            index = index.tolist()
        if isinstance(index, (bool, float)) or (
            index is not None and not isinstance(index, (int, np.integer, Sequence))
        ):
            raise TypeError(f"Class index must be an int, a sequence of ints or None, got {index!r}")
        self.index = index
        self.output = output

    def __repr__(self) -> str:
        return "Class(argmax)" if self.index is None else f"Class({self.index!r})"

    def bind(self, samples: Samples, output: Any = None) -> Target:
        samples = check_samples(samples)
        if isinstance(self.index, (int, np.integer)):
            return self
        if self.index is None:
            if output is None:
                return self  # argmax of each new sample
            logits = self.select(output).detach()
            if logits.dim() != 2:
                raise ValueError(f"Class needs a (B, N) output, got shape {tuple(logits.shape)}")
            index = take_rows(logits, samples, "an output").argmax(dim=-1).tolist()
        else:
            index = take_rows(torch.tensor([int(v) for v in self.index]), samples, "Class indices").tolist()
        return Class(index, output=self.output)

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        if out.dim() != 2:
            raise ValueError(
                f"Class needs a (B, N) output, got shape {tuple(out.shape)}; for a dense output use "
                "Area, Pixel or Segment"
            )
        batch, classes = out.shape
        if self.index is None:
            idx = out.detach().argmax(dim=1)
        else:
            values = [self.index] if isinstance(self.index, (int, np.integer)) else list(self.index)
            if not isinstance(self.index, (int, np.integer)) and len(values) != batch:
                raise ValueError(f"Class got {len(values)} indices for a batch of {batch}; give one per sample")
            bad = [v for v in values if not -classes <= int(v) < classes]
            if bad:
                raise IndexError(f"class index {bad[0]} is out of range for an output of {classes} classes")
            idx = torch.tensor([int(v) % classes for v in values], device=out.device).expand(batch)
        return out.gather(1, idx.view(batch, 1)).squeeze(1)


class Latent(Target):
    """``out[:, index]`` of a ``(B, D)`` part of a structured output, e.g. a VAE's ``mu``."""

    def __init__(self, index: int, output: OutputSelector = 1):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Latent index must be an int, got {index!r}")
        self.index = int(index)
        self.output = output

    def __repr__(self) -> str:
        return f"Latent({self.index})"

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        if out.dim() != 2:
            raise ValueError(f"Latent needs a (B, D) output part, got shape {tuple(out.shape)}")
        if not -out.shape[1] <= self.index < out.shape[1]:
            raise IndexError(f"latent index {self.index} is out of range for {out.shape[1]} dimensions")
        return out[:, self.index]


class Score(Target):
    """Any score: ``fn(output)`` must return a ``(B,)`` tensor (``output`` is the selected part).

    ``pure=True`` promises that ``fn`` reads nothing but its argument (no tensor stored by a hook, no
    state of the model): fields (``mode="field"``) may then differentiate ``fn`` alone. Otherwise a
    field cannot know what ``fn`` reads, and the explainer answers it with backward passes.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], output: OutputSelector = None, pure: bool = False):
        if not callable(fn):
            raise TypeError(f"Score needs a callable, got {fn!r}")
        if not isinstance(pure, bool):
            raise TypeError(f"Score pure must be a bool, got {pure!r}")
        self.fn = fn
        self.output = output
        self.field_seed = pure

    def __repr__(self) -> str:
        return f"Score({getattr(self.fn, '__name__', 'fn')})"

    def select(self, output: Any) -> Any:
        # A custom score may read any structure: by default it sees the whole model output.
        return output if self.output is None else select_output(output, self.output)

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        return self.fn(out)
