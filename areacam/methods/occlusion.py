"""Occlusion (Zeiler & Fergus 2014) for any target, with captum's sliding-window semantics.

A window slides over the input with the given strides; at each position the window's values are
replaced by the baseline and the drop of every target's score is spread over the window. Each value's
attribution is the mean drop over the windows that cover it. Every occluded forward pass scores all
K targets at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.checks import check_int
from areacam.core.autograd import score_targets
from areacam.core.explainer import Explainer
from areacam.core.explanation import Explanation, working_dtype
from areacam.core.inputs import as_baseline, check_input
from areacam.core.state import explaining
from areacam.methods.gradients import gradient_maps
from areacam.methods.passes import finish
from areacam.methods.registry import register
from areacam.targets.base import Target, as_target_list

__all__ = ["Occlusion", "window_slices"]

Shape = int | Sequence[int]


def _ints(name: str, value: object) -> tuple[int, ...]:
    values = (value,) if isinstance(value, (int, np.integer)) else value
    if (
        isinstance(value, bool)
        or not isinstance(values, Sequence)
        or not values
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
    ):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")
    if min(values) < 1:
        raise ValueError(f"{name} must be >= 1 everywhere, got {value!r}")
    return tuple(int(v) for v in values)


def _full(name: str, values: tuple[int, ...], value: object, dims: tuple[int, ...], fill: int) -> tuple[int, ...]:
    """Per-dimension values over ``dims`` = ``x.shape[1:]``: as given (captum's form), spatial only
    (one fewer: the channel dimension gets ``fill``) or one int for every spatial dimension."""
    if isinstance(value, (int, np.integer)):
        return (fill, *values * (len(dims) - 1))
    if len(values) == len(dims):
        return values
    if len(values) == len(dims) - 1:
        return (fill, *values)
    raise ValueError(
        f"{name} {value!r} has {len(values)} values for an input of shape (B, {', '.join(map(str, dims))}): give "
        f"{len(dims) - 1} (spatial; the window spans all channels) or {len(dims)} (captum's form, channels first)"
    )


def window_slices(dims: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]) -> list[tuple[slice, ...]]:
    """Every position of the window over ``dims``, as captum slides it.

    Per dimension the window starts at ``0, s, 2s, ...``, ``ceil((D - w) / s) + 1`` times; the last
    window is cut at the border. Positions past the border (empty windows) are left out: they change
    nothing in captum's result either.
    """
    for size, w, s in zip(dims, window, strides, strict=True):
        if w > size:
            raise ValueError(f"window {window} is larger than the input {dims} (dimension of size {size})")
        if s > w and size > w:
            raise ValueError(f"stride {strides} is larger than the window {window}: values would be skipped")
    starts = [
        [i * s for i in range(math.ceil((size - w) / s) + 1) if i * s < size]
        for size, w, s in zip(dims, window, strides, strict=True)
    ]
    # captum numbers the positions with the first dimension fastest; the order changes no sum's terms
    return [
        tuple(slice(start, min(start + w, size)) for start, w, size in zip(corner, window, dims, strict=True))
        for corner in product(*starts)
    ]


def _cli(model: nn.Module, layer: nn.Module | None, size: tuple[int, ...]) -> Occlusion:
    window = max(1, min(size) // 8)  # 8 windows across the shorter side, overlapping by half
    return Occlusion(model, window, max(1, window // 2))


@register(
    "occlusion",
    layer=False,
    summary="Occlusion (window 1/8 of the image, stride half of it)",
    build=_cli,
    peer="captum.attr.Occlusion",
)
class Occlusion(Explainer):
    """Occlusion: the score change when a sliding window is replaced by the baseline.

    Args:
        model: the model.
        window: the window's size: one int (a square spatial window spanning all channels), the
            spatial sizes ``(h, w)`` (all channels), or captum's ``sliding_window_shapes``
            ``(c, h, w)``.
        stride: the step between windows, in the same forms (the channel step defaults to the
            window's channel size); it may not exceed the window.
        baseline: what replaces the window: a number, or a tensor shaped like ``x`` or
            ``(1, C, H, W)`` (captum's ``baselines``).
        batch_size: occluded copies per forward pass (captum's ``perturbations_per_eval``).

    ``raw`` ``(B, K, C, H, W)`` equals captum's ``Occlusion.attribute``: each value gets the mean of
    ``score(x) - score(occluded)`` over the windows covering it (positive: hiding it lowers the score).
    ``maps`` is the channel maximum of its absolute value. Per-sample target choices are frozen at
    ``x``'s output, and a target that reads the input (``ReconstructionError``) compares with ``x``.
    Costs one forward pass per window position and image, shared by all K targets.
    """

    def __init__(
        self,
        model: nn.Module,
        window: Shape,
        stride: Shape,
        baseline: float | Tensor = 0.0,
        batch_size: int = 32,
        *,
        create_graph: bool = False,
    ):
        super().__init__(model, create_graph)
        self.window = _ints("window", window)
        self.stride = _ints("stride", stride)
        check_int("batch_size", batch_size)
        if baseline is None or isinstance(baseline, bool) or not isinstance(baseline, (int, float, Tensor)):
            raise TypeError(f"baseline must be a number or a tensor, got {type(baseline).__name__}")
        self._window_arg, self._stride_arg = window, stride
        self.baseline, self.batch_size = baseline, int(batch_size)

    def slices(self, x: Tensor) -> list[tuple[slice, ...]]:
        """The window positions over ``x.shape[1:]`` (checked: ``ValueError`` if the window does not fit)."""
        dims = tuple(x.shape[1:])
        window = _full("window", self.window, self._window_arg, dims, dims[0])
        stride = _full("stride", self.stride, self._stride_arg, dims, window[0])
        return window_slices(dims, window, stride)

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, H, W)`` batch ``x``.

        ``forward_args`` / ``forward_kwargs``: extra model arguments; a per-sample one follows the
        occluded copies of its sample.
        """
        targets = as_target_list(targets)
        x = check_input(self.model, x)
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        positions = self.slices(x)
        baseline = as_baseline(self.baseline, x)
        batch, count = x.shape[0], len(targets)
        work = working_dtype(x.dtype)
        total = torch.zeros(batch, count, *x.shape[1:], dtype=work, device=x.device)
        covered = torch.zeros(x.shape[1:], dtype=work, device=x.device)
        for where in positions:
            covered[where] += 1
        with explaining(self.model), torch.no_grad():
            output = fwd.run(self.model, x)
            scores = score_targets(targets, output, x).to(work)
            for b in range(batch):
                bound = [target.bind(b, output) for target in targets]
                for first in range(0, len(positions), self.batch_size):
                    chunk = positions[first : first + self.batch_size]
                    occluded = x[b : b + 1].repeat(len(chunk), *(1,) * (x.dim() - 1))
                    for i, where in enumerate(chunk):
                        row: tuple[int | slice, ...] = (i, *where)
                        source: tuple[int | slice, ...] = (b, *where)
                        occluded[row] = baseline[source]
                    reference = x[b : b + 1].expand_as(occluded)
                    perturbed = fwd.row(b, len(chunk)).run(self.model, occluded)
                    drops = scores[b] - score_targets(bound, perturbed, reference).to(work)  # (n, K)
                    for i, where in enumerate(chunk):
                        cell: tuple[int | slice, ...] = (b, slice(None), *where)
                        total[cell] += drops[i].view(count, *(1,) * len(where))
        raw = total / covered
        return finish(raw, gradient_maps(raw), scores, targets, x.shape[2:])
