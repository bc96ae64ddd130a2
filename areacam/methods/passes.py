"""The passes every explainer is made of: one forward pass for K targets, the gradients of the K scores
at a layer or at the input, and the result (maps upsampled and normalised)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from typing import NamedTuple

from torch import Tensor, nn

from areacam.core.autograd import score_columns, score_targets, stacked, target_gradients
from areacam.core.explanation import Explanation, normalize_maps, upsample, working_dtype
from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.layers.capture import LayerCapture
from areacam.layers.layout import LayerView, Layout
from areacam.targets.base import Target, as_target_list

__all__ = ["LayerActivations", "LayerGradients", "finish", "input_gradients", "layer_activations", "layer_gradients"]


class LayerGradients(NamedTuple):
    """What :func:`layer_gradients` returns (detached, in the :func:`~areacam.explanation.working_dtype`)."""

    acts: Tensor  # (B, C, *spatial): the layer's output as read by ``layout``
    grads: Tensor  # (B, K, C, *spatial): each target's gradient, read the same way
    scores: Tensor  # (B, K)
    targets: list[Target]
    layout: str  # the reading, e.g. "nchw" or "tokens(prefix=1, grid=14x14)"


class LayerActivations(NamedTuple):
    """What :func:`layer_activations` returns (detached)."""

    acts: Tensor  # (B, C, *spatial) in the working dtype: the layer's output as read by ``layout``
    value: Tensor  # the layer's output (or its picked part) as the model computed it
    output: object  # the model's output, for Target.bind
    scores: Tensor  # (B, K)
    targets: list[Target]
    layout: Layout  # the reading; str(layout) is what Explanation.layout records


def _read(capture: LayerCapture, x: Tensor, keep_graph: bool = False) -> Tensor:
    """The captured output read as ``(B, C, *s)``, checked to have the input's spatial dims."""
    acts, layout = capture.captured(), capture.layout
    read = layout(acts if keep_graph else acts.detach())
    if read.dim() != x.dim():
        shape = {3: "(B, C, l)", 4: "(B, C, h, w)", 5: "(B, C, d, h, w)"}[x.dim()]
        raise ValueError(
            f"CAM methods need a {shape} activation (the {x.dim() - 2} spatial dims of the input "
            f"{tuple(x.shape)}), but {capture.where} gives {tuple(acts.shape)}, read as {layout}"
        )
    return read


def layer_gradients(
    model: nn.Module,
    layer: nn.Module | str,
    x: Tensor,
    targets: Target | Sequence[Target],
    batched: bool | None = None,
    view: LayerView | None = None,
    fwd: ForwardArgs = NO_ARGS,
    create_graph: bool = False,
) -> LayerGradients:
    """One forward pass; activations of ``layer`` and their gradient for each target.

    ``view`` says how the layer's output is read (default: from its shape). Gradients are taken
    with respect to the captured output itself and then read like it, so a token layer's
    activation and gradient use the same reshape. ``*s`` are the layer's spatial dims, as many as
    the input's. No graph is built below the layer, so the backward passes stop there.

    ``create_graph=True``: the whole forward pass is recorded in the caller's train/eval mode and
    ``acts``, ``grads`` and ``scores`` keep their graph to the parameters and the input (not detached).
    """
    targets = as_target_list(targets)
    x = check_input(model, x)
    mode = "tape" if create_graph else "leaf"
    with explaining(model, keep_mode=create_graph), LayerCapture(model, layer, view, mode=mode) as capture:
        output = capture.run(x, fwd)
        acts, layout = capture.captured(), capture.layout
        read = _read(capture, x, create_graph)
        columns = score_columns(targets, output, x)
        grads = target_gradients(columns, acts, capture.where, targets, batched, create_graph)
        scores = stacked(columns, create_graph)
    work = working_dtype(read.dtype)
    return LayerGradients(read.to(work), layout.per_target(grads), scores.to(work), targets, str(layout))


def layer_activations(
    model: nn.Module,
    layer: nn.Module | str,
    x: Tensor,
    targets: Target | Sequence[Target],
    view: LayerView | None = None,
    fwd: ForwardArgs = NO_ARGS,
) -> LayerActivations:
    """One forward pass and no backward: the layer's activations and the K target scores.

    The capture is the CAMs' (the model continues from a copy of the layer's output, so in-place
    ops after the layer leave the captured value alone).
    """
    targets = as_target_list(targets)
    x = check_input(model, x)
    with explaining(model), LayerCapture(model, layer, view) as capture:
        output = capture.run(x, fwd)
        read = _read(capture, x)
        scores = score_targets(targets, output, x)
    value = capture.captured().detach()
    work = working_dtype(read.dtype)
    return LayerActivations(read.to(work), value, output, scores.detach().to(work), targets, capture.layout)


def input_gradients(
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    batched: bool | None = None,
    hooks: AbstractContextManager | None = None,
    fwd: ForwardArgs = NO_ARGS,
    create_graph: bool = False,
) -> tuple[Tensor, Tensor, list[Target]]:
    """One forward pass; the input gradient of each target: ``(grads (B, K, C, *spatial), scores (B, K))``.

    ``hooks`` is a context manager active during the pass (e.g. guided-ReLU hooks).
    ``create_graph=True``: the pass runs in the caller's train/eval mode and ``grads`` and ``scores``
    keep their graph to the parameters (and to ``x`` where it requires grad).
    """
    targets = as_target_list(targets)
    x = check_input(model, x)
    inputs = x if create_graph and x.requires_grad else x.detach().requires_grad_(True)
    with ExitStack() as stack:
        stack.enter_context(explaining(model, keep_mode=create_graph))
        stack.enter_context(hooks if hooks is not None else nullcontext())
        output = fwd.run(model, inputs)
        columns = score_columns(targets, output, inputs)
        grads = target_gradients(columns, inputs, "the input", targets, batched, create_graph)
        scores = stacked(columns, create_graph)
    return grads, scores.to(grads.dtype), targets


def finish(
    raw: Tensor,
    maps: Tensor,
    scores: Tensor,
    targets: list[Target],
    size: Sequence[int],
    layout: str | None = None,
) -> Explanation:
    """Build the result: ``maps`` ``(B, K, *s)`` upsampled to ``size`` and min-max normalised.

    Everything is computed in the inputs' working dtype and rounded to float32 once, here.
    """
    maps, degenerate = normalize_maps(upsample(maps, tuple(size)))
    return Explanation(
        maps=maps.float(),
        raw=raw.float(),
        scores=scores.float(),
        degenerate=degenerate,
        targets=list(targets),
        layout=layout,
    )
