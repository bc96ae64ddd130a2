"""Gradient CAMs at a layer inside a :class:`~areacam.layers.windows.SlidingWindow`: per-patch maps, stitched.

The layer runs once per window. One forward pass of the whole window collects each call's output as
a leaf (no graph below the layer); each target's score is the blended output's, so one backward pass
per target gives every patch its own gradient (already carrying its blending weight). Each patch's
map is the CAM of its own activations and gradients (``cam`` of the explainer, ReLU), upsampled to
the window and blended into volume coordinates with the window weights, as the model's outputs are:
``map = sum_p w_p * map_p / sum_p w_p``. Maps, not activations, are stitched: a CAM's channel weights
belong to one patch's activations, and averaging the weights over the volume would mix patches that
never saw the target. Where windows do not overlap, each voxel's map is its patch's own CAM.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from areacam.core.autograd import NoGradientError, score_columns, stacked
from areacam.core.explanation import Explanation, upsample, working_dtype
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.layers.windows import PatchCapture, SlidingWindow, at
from areacam.methods.passes import finish
from areacam.targets.base import Target, as_target_list

if TYPE_CHECKING:  # pragma: no cover
    from areacam.methods.cam import CAM

__all__ = ["NO_WINDOW_FIELD", "stitched_backward"]

#: Why the field does not run through a sliding window.
NO_WINDOW_FIELD = (
    "the field does not run through a SlidingWindow: its tangents are per-channel constants over one "
    "activation, but a stitched CAM has one set of channel weights per patch (C products per patch)"
)


def stitched_backward(
    explainer: CAM, window: SlidingWindow, x: Tensor, targets: Target | Sequence[Target]
) -> Explanation:
    """The stitched explanation: ``maps (B, K, *spatial)`` at the input's size; ``raw`` the blended maps
    before normalisation, also at the input's size; ``layout`` the layer's reading plus the patch count."""
    targets = as_target_list(targets)
    x = check_input(window, x)
    with explaining(window), PatchCapture(window, explainer.layer, explainer.view) as capture:
        output = capture.run(x)
        layout = capture.layout
        columns = score_columns(targets, output, x)
        work = working_dtype(capture.values[0].dtype)
        roi = window.window(x.shape[2:])
        weights = window.weights(roi, work, x.device)
        blended = torch.zeros((x.shape[0], len(targets), *x.shape[2:]), dtype=work, device=x.device)
        for k, column in enumerate(columns):
            grads = _gradients(column, capture.values, k < len(columns) - 1, targets[k], capture.where)
            for value, grad, call in zip(capture.values, grads, capture.patches):
                acts = layout(value.detach()).to(work)
                if acts.dim() != x.dim():
                    raise ValueError(
                        f"CAM methods need a (B, C, *spatial) activation with the input's {x.dim() - 2} spatial "
                        f"dims, but {capture.where} gives {tuple(value.shape)}, read as {layout}"
                    )
                per_target = layout.per_target(grad.unsqueeze(1)).to(work)
                maps = upsample(torch.relu(explainer.cam(acts, per_target)), roi)  # (n, 1, *roi)
                for j, (b, where) in enumerate(call):
                    blended[at(b, k, where)] += maps[j : j + 1] * weights
        scores = stacked(columns).to(work)
    blended = blended / window.coverage(x, capture.patches, weights)
    patches = sum(len(call) for call in capture.patches) // x.shape[0]
    return finish(blended, blended, scores, targets, x.shape[2:], f"{layout}, stitched from {patches} patches")


def _gradients(column: Tensor, values: list[Tensor], retain: bool, target: Target, where: str) -> list[Tensor]:
    """The gradient of the batch sum of one target's scores at every call's leaf (zeros where it has none)."""
    found: Sequence[Tensor | None] = [None] * len(values)
    if column.requires_grad:
        found = torch.autograd.grad(column.sum(), values, retain_graph=retain, allow_unused=True)
    if all(grad is None for grad in found):
        raise NoGradientError(
            f"{where} receives no gradient from {target!r}: it is not on the path from the layer to that "
            "output (a detached branch, or a part of the output computed before it)"
        )
    return [torch.zeros_like(value) if grad is None else grad for grad, value in zip(found, values)]
