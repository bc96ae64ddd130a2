"""The layer table: every named module of a model with its output, how it reads, and the usual CAM layers."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from areacam.core.outputs import describe, parts, select_output
from areacam.core.state import explaining
from areacam.layers.find import unwrap_model
from areacam.layers.hooks import Hooks
from areacam.layers.layout import AmbiguousLayoutError, LayerView, Layout, module_layout
from areacam.layers.provenance import settle

__all__ = ["layer_table"]


def layer_table(model: nn.Module, x: Tensor) -> list[dict]:
    """One dummy forward and backward of ``x``: every named module with its output, layout and a CAM suggestion.

    Rows, in ``named_modules()`` order: ``name``, ``type``, ``shape`` (a tuple for a tensor output, a
    list/dict of shapes otherwise), ``calls``, ``layout`` (:meth:`Layout.describe` of the output as
    the explainers read it with no layout argument, ``None`` when it is not a feature map, or the
    reason when the shape is ambiguous), ``reaches`` (the output depends on the map's spatial
    positions: a random projection of the output has a nonzero gradient there) and ``suggested``.
    A layer is suggested when it runs once, reads as a feature map larger than 1x1 that is not an
    output of the model, the output reaches it, and it is the last such layer, in run order, on its
    grid. Hooks are removed in ``finally``.
    """
    inner = unwrap_model(model)
    named = [(name, module) for name, module in inner.named_modules() if name]
    modules = dict(named)
    order: list[tuple[str, object]] = []
    nodes: dict[str, object] = {}  # the grad_fn of each first tensor output, as it was when the module returned
    input_size = tuple(x.shape[2:])

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            order.append((name, output))
            if isinstance(output, Tensor):
                nodes.setdefault(name, output.grad_fn)

        return hook

    with explaining(inner), Hooks() as hooks:
        for name, module in named:
            hooks.add(module.register_forward_hook(record(name)))
        inputs = x.detach().clone().requires_grad_(True)
        output = inner(inputs)
    view = LayerView()
    finals = {tuple(t.shape) for _, t in parts(output) if isinstance(t, Tensor)} | (
        {tuple(output.shape)} if isinstance(output, Tensor) else set()
    )
    counts: dict[str, int] = {}
    first: dict[str, object] = {}
    for name, out in order:
        counts[name] = counts.get(name, 0) + 1
        first.setdefault(name, out)
    tensors = {name: out for name, out in first.items() if isinstance(out, Tensor)}
    layouts: dict[str, Layout | str | None] = dict.fromkeys(first)
    fixed = {
        node: (kind, name)
        for name, node in nodes.items()
        if node is not None and (kind := module_layout(modules[name])) is not None
    }
    for name, out in tensors.items():
        if out.is_floating_point() and out.shape[:1] == x.shape[:1]:
            try:
                layouts[name] = view.read(
                    out.shape,
                    input_size,
                    f"layer {name!r}",
                    modules[name],
                    model,
                    settle=partial(settle, nodes.get(name), fixed),
                )
            except AmbiguousLayoutError:
                layouts[name] = "ambiguous: pass layout="
            except ValueError:
                pass
    maps = {
        name: lay
        for name, lay in layouts.items()
        if isinstance(lay, Layout)
        and not lay.assumed
        and counts[name] == 1
        and tuple(tensors[name].shape) not in finals
        and math.prod(lay(tensors[name]).shape[2:]) > 1
    }
    reaches = _reaches(output, {name: tensors[name] for name in maps}, maps)
    suggested: set[str] = set()
    runs = [(name, tuple(maps[name](tensors[name]).shape[2:])) for name, _ in order if name in maps and reaches[name]]
    for (name, grid), (_, nxt) in zip(runs, [*runs[1:], (None, None)]):
        if nxt != grid:
            suggested.add(name)
    rows = []
    for name, module in named:
        lay = layouts.get(name)
        rows.append(
            {
                "name": name,
                "type": type(module).__name__,
                "shape": None if name not in first else describe(first[name]),
                "calls": counts.get(name, 0),
                "layout": lay.describe(tensors[name].shape) if isinstance(lay, Layout) else lay,
                "reaches": reaches.get(name, False),
                "suggested": name in suggested,
            }
        )
    return rows


def _reaches(output: object, tensors: dict[str, Tensor], layouts: dict[str, Layout]) -> dict[str, bool]:
    """Per name: whether a fixed random projection of the model output has a nonzero gradient on the map."""
    result = dict.fromkeys(tensors, False)
    try:
        selected = select_output(output, None)
    except (KeyError, TypeError, IndexError):
        return result
    names = [n for n, t in tensors.items() if t.requires_grad]
    if not names or not selected.requires_grad or not selected.is_floating_point():
        return result
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(selected.shape, generator=generator).to(selected.device, selected.dtype)
    grads = torch.autograd.grad((selected * weights).sum(), [tensors[n] for n in names], allow_unused=True)
    for name, grad in zip(names, grads):
        result[name] = grad is not None and bool(layouts[name](grad).abs().amax() > 0)
    return result
