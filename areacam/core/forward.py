"""The model call with extra arguments: ``model(x, *forward_args, **forward_kwargs)``, the one place it is made.

A tensor argument whose leading dimension equals the batch size ``B`` of ``x`` is *per sample*: when a
method repeats, perturbs or selects rows of ``x``, it selects the same rows of every per-sample
argument (:meth:`ForwardArgs.take`, :meth:`ForwardArgs.tile`, :meth:`ForwardArgs.row`). Everything else
is passed unchanged; :class:`Shared` marks a tensor that must never be expanded even if its leading
dimension happens to equal ``B``.

A size that differs from ``B`` is not an error here (a ``(T,)`` table is a legitimate shared argument);
where a value is known to be per sample (a column of a run's table named on the command line), the
caller checks its size (:func:`check_rows`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["NO_ARGS", "ForwardArgs", "Shared", "check_rows", "forward_args"]


@dataclass(frozen=True)
class Shared:
    """A forward argument passed to every call as is, never expanded per sample (any value; a non-tensor
    is accepted and passed unchanged)."""

    value: Any


def _per_sample(value: Any, batch: int | None) -> bool:
    return batch is not None and isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == batch


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Shared) else value


@dataclass(frozen=True)
class ForwardArgs:
    """Extra positional (``args``, appended after ``x``) and keyword arguments of the model's forward.

    ``batch`` is the number of rows of the ``x`` they were written for (``None``: no per-sample argument).
    """

    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    batch: int | None = None

    @property
    def empty(self) -> bool:
        return not self.args and not self.kwargs

    def _map(self, fn: Any, rows: int) -> ForwardArgs:
        """Apply ``fn`` to each per-sample tensor: the arguments of a batch of ``rows`` rows."""
        if self.batch is None or self.empty:
            return self
        args = tuple(fn(a) if _per_sample(a, self.batch) else a for a in self.args)
        kwargs = {k: fn(v) if _per_sample(v, self.batch) else v for k, v in self.kwargs.items()}
        return ForwardArgs(args, kwargs, rows)

    def take(self, index: slice | Sequence[int] | Tensor) -> ForwardArgs:
        """The arguments of the rows ``x[index]`` (a slice, int indices or an index tensor)."""
        if self.batch is None:
            return self
        if isinstance(index, slice):
            return self._map(lambda v: v[index], len(range(self.batch)[index]))
        rows = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        return self._map(lambda v: v[rows.to(v.device)], rows.numel())

    def row(self, b: int, count: int) -> ForwardArgs:
        """The arguments of ``count`` copies of sample ``b`` (``x[b:b+1].repeat(count, ...)``), without a copy."""
        return self._map(lambda v: v[b : b + 1].expand(count, *v.shape[1:]), count)

    def tile(self, count: int) -> ForwardArgs:
        """The arguments of ``x.repeat(count, ...)``: copy ``c`` of sample ``b`` is row ``c * B + b``."""
        return self._map(lambda v: v.repeat(count, *(1,) * (v.dim() - 1)), count * (self.batch or 0))

    def passed_on(self) -> dict[str, Any]:
        """Keywords that hand these arguments on to an explainer call: ``explainer(x, t, **fwd.passed_on())``.

        Empty when there are none, so a plain ``maps(x, targets)`` callable still works.
        """
        return {} if self.empty else {"forward_args": self}

    def run(self, model: nn.Module, x: Any) -> Any:
        """``model(x, *args, **kwargs)`` with :class:`Shared` values unwrapped."""
        if self.empty:
            return model(x)
        return model(x, *map(_plain, self.args), **{k: _plain(v) for k, v in self.kwargs.items()})


#: No extra arguments: ``model(x)``.
NO_ARGS = ForwardArgs()


def forward_args(
    model: nn.Module,
    x: Tensor,
    args: Sequence[Any] | ForwardArgs = (),
    kwargs: Mapping[str, Any] | None = None,
    where: str = "the call",
) -> ForwardArgs:
    """Check and pack the extra arguments of a call on the batch ``x``.

    ``args`` may already be a :class:`ForwardArgs` (then ``kwargs`` must be empty). Raises ``TypeError``
    (prefixed with ``where``) when the model's forward does not accept them, before the model runs.
    """
    if isinstance(args, ForwardArgs):
        if kwargs:
            raise TypeError(f"{where}: pass forward_kwargs inside the ForwardArgs, not beside it")
        return args
    if isinstance(args, (str, bytes, Tensor)) or not isinstance(args, Sequence):
        raise TypeError(f"{where}: forward_args must be a tuple or list of arguments, got {type(args).__name__}")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise TypeError(f"{where}: forward_kwargs must be a dict with str keys, got {kwargs!r}")
    if not args and not kwargs:
        return NO_ARGS
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # pragma: no cover - builtin forward without a signature
        signature = None
    if signature is not None:
        try:
            signature.bind(x, *args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{where}: {type(model).__name__}.forward() does not take these arguments: {err}") from None
    return ForwardArgs(tuple(args), dict(kwargs), x.shape[0])


def check_rows(name: str, value: Tensor, batch: int) -> None:
    """A value known to be per sample must have ``batch`` rows: ``ValueError`` naming it and both sizes."""
    if value.dim() == 0 or value.shape[0] != batch:
        rows = value.shape[0] if value.dim() else "no"
        raise ValueError(f"forward argument {name!r} is per sample but has {rows} rows for a batch of {batch}")
