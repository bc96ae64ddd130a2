"""Gradients of K target scores from one forward pass (one vector-Jacobian product per target)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from areacam.core.explanation import working_dtype

__all__ = ["NoGradientError", "score_columns", "score_targets", "stacked", "target_gradients"]


class NoGradientError(ValueError):
    """A target's score does not depend on the explained layer (or input): nothing to explain there."""


def score_columns(targets: Sequence, output: object, inputs: Tensor) -> list[Tensor]:
    """Evaluate every target on one model output: K ``(B,)`` scores, checked finite.

    Kept apart (not stacked) so that each target's backward pass runs through its own branch only:
    through a stack, every backward pass would also carry zero gradients down the K - 1 other
    targets' branches, each the size of the output (a large cost for volumes).
    """
    columns = [target(output, inputs) for target in targets]
    _check_finite(stacked(columns), targets)
    return columns


def stacked(columns: Sequence[Tensor], keep_graph: bool = False) -> Tensor:
    """The ``(B, K)`` scores of :func:`score_columns`' columns: detached unless ``keep_graph``."""
    return torch.stack([column if keep_graph else column.detach() for column in columns], dim=1)


def score_targets(targets: Sequence, output: object, inputs: Tensor) -> Tensor:
    """Evaluate every target on one model output: ``(B, K)`` scores, checked finite."""
    scores = torch.stack([target(output, inputs) for target in targets], dim=1)
    _check_finite(scores, targets)
    return scores


def _check_finite(scores: Tensor, targets: Sequence) -> None:
    if not torch.isfinite(scores).all():
        bad = (~torch.isfinite(scores)).nonzero()[0].tolist()
        raise ValueError(
            f"the score of target {targets[bad[1]]!r} on sample {bad[0]} is not finite: the model "
            "output holds NaN or inf there"
        )


def target_gradients(
    scores: Tensor | Sequence[Tensor],
    wrt: Tensor,
    what: str,
    targets: Sequence,
    batched: bool | None = None,
    create_graph: bool = False,
) -> Tensor:
    """Gradient of each target score with respect to ``wrt``: ``(B, K, *wrt.shape[1:])`` in the working dtype
    (float64 for a float64 model, else float32; see :func:`~areacam.explanation.working_dtype`).

    ``scores`` is ``(B, K)``, or the K ``(B,)`` columns of :func:`score_columns` (faster: each
    backward pass touches its own target's branch only). Samples are independent in eval mode, so
    the gradient of the batch sum of column ``k`` gives every sample's own gradient. Only ``wrt`` is
    differentiated: parameters get no ``.grad``. ``batched=None`` uses one batched VJP
    (``is_grads_batched``) on accelerators for K > 1 and a loop of K VJPs on the CPU, where it is
    faster; a model whose ops have no batching rule falls back to the loop. ``what`` names ``wrt`` in errors.

    ``create_graph=True`` keeps the graph of the gradients (for a loss on them): it always takes the
    loop of K VJPs (``batched`` is ignored) and keeps the forward graph for the caller's backward pass.
    """
    if not wrt.requires_grad:
        raise ValueError(f"{what} does not require grad: it was computed under torch.no_grad() or detached")
    if isinstance(scores, Tensor):
        columns = [scores[:, k] for k in range(scores.shape[1])]  # through the stack, as before
    else:
        columns = list(scores)
    count = len(columns)
    if not any(column.requires_grad for column in columns):
        raise NoGradientError(
            f"{what} receives no gradient from {targets[0]!r}: the score does not depend on it (a "
            "detached branch, or a part of the output computed before it)"
        )
    if batched is None:
        batched = count > 1 and wrt.device.type != "cpu"
    grads = None
    if batched and count > 1 and not create_graph:
        grads = _batched(scores if isinstance(scores, Tensor) else torch.stack(columns, dim=1), wrt)
    if grads is None:
        grads = _looped(columns, wrt, what, targets, create_graph)
    return grads.to(working_dtype(grads.dtype))


def _looped(columns: list[Tensor], wrt: Tensor, what: str, targets: Sequence, create_graph: bool = False) -> Tensor:
    count = len(columns)
    grads = []
    for k, column in enumerate(columns):
        grad = None
        if column.requires_grad:
            retain = create_graph or k < count - 1
            (grad,) = torch.autograd.grad(
                column.sum(), wrt, retain_graph=retain, create_graph=create_graph, allow_unused=True
            )
        if grad is None:
            raise NoGradientError(
                f"{what} receives no gradient from {targets[k]!r}: it is not on the path from the "
                "layer to that output (a detached branch, or a part of the output computed before it)"
            )
        grads.append(grad)
    return torch.stack(grads, dim=1)


def _batched(scores: Tensor, wrt: Tensor) -> Tensor | None:
    count = scores.shape[1]
    seeds = torch.eye(count, dtype=scores.dtype, device=scores.device)
    seeds = seeds.unsqueeze(1).expand(count, scores.shape[0], count)
    try:
        (grads,) = torch.autograd.grad(
            scores, wrt, grad_outputs=seeds, is_grads_batched=True, retain_graph=True, allow_unused=True
        )
    except RuntimeError:
        return None  # an op without a batching rule: use the loop
    if grads is None:
        return None  # the loop names the target that does not reach
    return grads.transpose(0, 1)
