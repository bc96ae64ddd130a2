"""Gradients of K target scores from one forward pass (one vector-Jacobian product per target)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["score_targets", "target_gradients"]


def score_targets(targets: Sequence, output: object, inputs: Tensor) -> Tensor:
    """Evaluate every target on one model output: ``(B, K)`` scores, checked finite."""
    scores = torch.stack([target(output, inputs) for target in targets], dim=1)
    if not torch.isfinite(scores).all():
        bad = (~torch.isfinite(scores)).nonzero()[0].tolist()
        raise ValueError(
            f"the score of target {targets[bad[1]]!r} on sample {bad[0]} is not finite: the model "
            "output holds NaN or inf there"
        )
    return scores


def target_gradients(
    scores: Tensor, wrt: Tensor, what: str, targets: Sequence, batched: bool | None = None
) -> Tensor:
    """Gradient of each target score with respect to ``wrt``: ``(B, K, *wrt.shape[1:])`` float32.

    ``scores`` is ``(B, K)``. Samples are independent in eval mode, so the gradient of the batch sum
    of column ``k`` gives every sample's own gradient. Only ``wrt`` is differentiated: parameters
    get no ``.grad``. ``batched=None`` uses one batched VJP (``is_grads_batched``) on accelerators
    for K > 1 and a loop of K VJPs on the CPU, where it is faster; a model whose ops have no batching
    rule falls back to the loop. ``what`` names ``wrt`` in errors.
    """
    if not wrt.requires_grad:
        raise ValueError(f"{what} does not require grad: it was computed under torch.no_grad() or detached")
    count = scores.shape[1]
    if not scores.requires_grad:
        raise ValueError(
            f"{what} receives no gradient from {targets[0]!r}: the score does not depend on it (a "
            "detached branch, or a part of the output computed before it)"
        )
    if batched is None:
        batched = count > 1 and wrt.device.type != "cpu"
    grads = None
    if batched and count > 1:
        grads = _batched(scores, wrt)
    if grads is None:
        grads = _looped(scores, wrt, what, targets)
    return grads.float()


def _looped(scores: Tensor, wrt: Tensor, what: str, targets: Sequence) -> Tensor:
    count = scores.shape[1]
    grads = []
    for k in range(count):
        (grad,) = torch.autograd.grad(
            scores[:, k].sum(), wrt, retain_graph=k < count - 1, allow_unused=True
        )
        if grad is None:
            raise ValueError(
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
