"""Layout by provenance: when a layer's output shape ties (its channel count equals its grid), its own
autograd graph settles channels-first or channels-last, or nothing does.

The walk starts at the ``grad_fn`` of the layer's output and goes back through layout-keeping ops
(elementwise arithmetic, activations, dropout, casts, copies, ``torch.cat``). Each path must end at the
output of a module whose type fixes its layout (:func:`~areacam.layers.layout.module_layout`:
convolutions, batch/group/instance norms and pools are channels-first; ``nn.Linear`` and
``nn.LayerNorm`` channels-last), and all of them at the same layout. A permute, reshape, view,
transpose or any other op on a path means no decision. Inputs computed from parameters and constants
alone (a learned scale, PReLU's weight, a timestep embedding) hold no activation and are skipped.

Nodes are matched by identity: :class:`FixedOutputs` records the ``grad_fn`` of each fixed-layout
module's output during a forward pass. :func:`probe` runs that pass, with autograd on and only up to
the layer, for the captures that build no graph below the layer; it runs only when the shape ties.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from areacam.core.forward import ForwardArgs
from areacam.core.state import explaining
from areacam.layers.hooks import Hooks, StopForward
from areacam.layers.layout import AmbiguousLayoutError, LayerView, Layout, module_layout

__all__ = ["KEEPING_OPS", "FixedOutputs", "Source", "probe", "read_or_defer", "settle"]

Source = tuple[str, str]  # (layout, the dotted name of the module whose output fixes it)

#: Autograd node names (without their trailing number) of ops whose output has their inputs' layout.
KEEPING_OPS = frozenset(
    {
        *(f"{op}Backward" for op in ("Add", "Sub", "Mul", "Div", "Neg", "Abs", "Pow", "Exp", "Log", "Sqrt", "Rsqrt")),
        *(f"{op}Backward" for op in ("Clamp", "ClampMin", "ClampMax", "Maximum", "Minimum", "Where", "Lerp")),
        *(f"{op}Backward" for op in ("Addcmul", "Addcdiv", "Reciprocal", "Square")),
        *(f"{op}Backward" for op in ("Relu", "Threshold", "LeakyRelu", "PreluKernel", "Hardtanh", "Elu", "Celu")),
        *(f"{op}Backward" for op in ("Gelu", "Silu", "Mish", "Sigmoid", "Tanh", "Hardswish", "Hardsigmoid")),
        *(f"{op}Backward" for op in ("Softplus", "LogSigmoid", "NativeDropout", "Clone", "ToCopy", "Cat")),
    }
)

# A subgraph larger than this is not searched for being parameter-only (it then counts as unknown).
_CONSTANT_SEARCH = 256
_NUMBER = re.compile(r"\d+$")


class FixedOutputs:
    """Forward hooks on every fixed-layout module of ``model`` recording ``grad_fn -> (layout, name)``.

    ``with FixedOutputs(model) as fixed: model(x)`` fills ``fixed.nodes``; the hooks come off on leaving
    the block, also when the model raises.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.nodes: dict[Any, Source] = {}
        self._hooks = Hooks()

    def __enter__(self) -> FixedOutputs:
        try:
            for name, module in self.model.named_modules():
                kind = module_layout(module)
                if kind is not None:
                    self._hooks.add(module.register_forward_hook(self._recorder(kind, name)))
        except BaseException:
            self._hooks.remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.remove()

    def _recorder(self, kind: str, name: str) -> Callable[[nn.Module, tuple, object], None]:
        def record(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, Tensor) and output.grad_fn is not None:
                self.nodes.setdefault(output.grad_fn, (kind, name))

        return record


def _op(node: Any) -> str:
    return _NUMBER.sub("", node.name())


def _constant(node: Any, fixed: dict[Any, Source]) -> bool:
    """Whether everything ``node`` computes comes from parameters and constants (no activation)."""
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in fixed or len(seen) > _CONSTANT_SEARCH:
            return False
        variable = getattr(current, "variable", None)
        if variable is not None:  # an AccumulateGrad: a leaf tensor
            if not isinstance(variable, nn.Parameter):
                return False  # the input (or another leaf that is no parameter)
            continue
        stack.extend(following for following, _ in current.next_functions if following is not None)
    return True


def settle(node: Any, fixed: dict[Any, Source]) -> Source | None:
    """The layout every path back from ``node`` ends at, and the nearest module that fixes it; else ``None``."""
    if node is None:
        return None
    found: list[Source] = []
    queue, seen = deque([node]), set()
    while queue:
        current = queue.popleft()
        if current in seen:
            continue
        seen.add(current)
        if current in fixed:
            found.append(fixed[current])
        elif _op(current) in KEEPING_OPS:
            queue.extend(following for following, _ in current.next_functions if following is not None)
        elif not _constant(current, fixed):
            return None
    if not found or len({kind for kind, _ in found}) != 1:
        return None
    return found[0]


def probe(
    model: nn.Module, module: nn.Module, view: LayerView, x: Tensor, fwd: ForwardArgs, where: str
) -> Source | None:
    """Run ``model`` on ``x`` with autograd on, up to ``module``, and :func:`settle` its picked output.

    ``None`` when autograd cannot record, the layer did not run, the recorded pass fails or the walk
    decides nothing. The model is left as found (:func:`~areacam.core.state.explaining`).
    """
    seen: list[Any] = []

    def at_layer(layer: nn.Module, inputs: tuple, output: object) -> None:
        part, _ = view.pick(output, where)
        seen.append(part.grad_fn)
        raise StopForward

    with explaining(model), FixedOutputs(model) as fixed, Hooks() as hooks:
        hooks.add(module.register_forward_hook(at_layer))
        start = x.detach().clone() if x.is_inference() else x.detach()
        if torch.is_grad_enabled() and start.is_floating_point():
            start = start.requires_grad_(True).clone()  # not a leaf: in-place ops of the model on it stay legal
        try:
            fwd.run(model, start)
        except StopForward:
            pass
        except RuntimeError:  # the pass ran once already; a failure that only recording brings decides nothing
            return None
    return settle(seen[0], fixed.nodes) if seen else None


def read_or_defer(
    view: LayerView,
    shape: tuple[int, ...],
    input_size: tuple[int, ...],
    where: str,
    module: nn.Module,
    model: nn.Module,
) -> Layout | None:
    """The reading of a layer's output inside its forward hook; ``None`` for a channels-first/last tie.

    A hook cannot run the model again, so the caller settles a tie after the pass: ``view.read(...,
    settle=...)`` with :func:`probe`. Every other reading error is raised at once.
    """
    try:
        return view.read(shape, input_size, where, module, model)
    except AmbiguousLayoutError as err:
        if err.tie:
            return None
        raise
