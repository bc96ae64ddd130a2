"""GAIN's attention-mining loss (Li et al. 2018): the target's score once the attended region is erased.

A map that covers all the evidence for a target leaves nothing to score once its region is removed from
the input; a map that covers only the most telling part leaves the rest. Minimising the score of the
erased image therefore pushes the explanation to cover the whole object, where :func:`~areacam.losses.
outside_mass` and :func:`~areacam.losses.mask_error` only say where it may lie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from areacam.core.autograd import score_targets
from areacam.core.forward import forward_args as pack_forward_args
from areacam.core.inputs import check_input
from areacam.targets.base import Target, as_target_list

__all__ = ["attention_mining", "erase"]


def erase(x: Tensor, maps: Tensor, sigma: float = 0.5, omega: float = 10.0) -> Tensor:
    """GAIN's erased images ``x* = x - T(A) x``, ``T(A) = sigmoid(omega (A - sigma))``: ``(K, B, C, *spatial)``.

    ``x``: ``(B, C, *spatial)``; ``maps``: ``(B, K, *spatial)`` at the input's size, in ``[0, 1]`` (an
    explanation's ``maps``). ``T`` is a soft threshold at ``sigma`` (sharper for a larger ``omega``), so
    the erased images stay differentiable in the maps.
    """
    if not isinstance(maps, Tensor) or maps.dim() != x.dim() or not maps.is_floating_point():
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"maps must be a float tensor (B, K, *spatial) for x of shape {tuple(x.shape)}, got {shape}")
    if maps.shape[0] != x.shape[0] or maps.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"maps of shape {tuple(maps.shape)} do not fit x of shape {tuple(x.shape)}: expected "
            f"({x.shape[0]}, K, {', '.join(map(str, x.shape[2:]))}), the maps at the input's size"
        )
    for name, value in (("sigma", sigma), ("omega", omega)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise TypeError(f"{name} must be a number, got {value!r}")
    if omega <= 0:
        raise ValueError(f"omega must be > 0 (the sharpness of the soft threshold), got {omega}")
    keep = 1 - torch.sigmoid(omega * (maps.to(x.dtype) - sigma))  # (B, K, *spatial)
    return keep.transpose(0, 1).unsqueeze(2) * x.unsqueeze(0)


def attention_mining(
    model: nn.Module,
    x: Tensor,
    maps: Tensor,
    targets: Target | Sequence[Target],
    sigma: float = 0.5,
    omega: float = 10.0,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Tensor:
    """GAIN's attention-mining loss: each target's score on the input with its map's region erased, ``(B, K)``.

    For target ``k`` with map ``A_k``: ``L_am = s_k(x - T(A_k) x)`` with ``T(A) = sigmoid(omega (A - sigma))``
    (Li et al. 2018, eqs. 2-4; the paper's ``sigma = 0.5``, ``omega = 10``). GAIN scores the class
    probability: pass ``ac.Score(lambda logits: logits.softmax(1)[:, c])``, or a
    :class:`~areacam.Class` target to score the logit. Per-sample choices (``Class()``'s argmax) are
    frozen at the unperturbed input's output (:meth:`~areacam.Target.bind`), one extra forward pass
    without gradients.

    ``maps``: ``(B, K, *spatial)`` at the input's size, from an explainer built with
    ``create_graph=True`` so that the loss reaches the parameters through the maps as well as through
    the erased images' forward passes. The model runs ``K`` times on ``B`` erased images in the
    caller's train/eval mode (as GAIN trains on them; a BatchNorm's running statistics see them).
    ``forward_args`` / ``forward_kwargs``: the model's extra arguments, per-sample ones following
    their sample.
    """
    targets = as_target_list(targets)
    x = check_input(model, x)
    if isinstance(maps, Tensor) and maps.dim() == x.dim() and maps.shape[1] != len(targets):
        raise ValueError(f"maps hold {maps.shape[1]} targets but {len(targets)} targets were given")
    erased = erase(x, maps, sigma, omega)
    fwd = pack_forward_args(model, x, forward_args, forward_kwargs, "attention_mining(...)")
    with torch.no_grad():
        output = fwd.run(model, x)
    bound = [target.bind(list(range(x.shape[0])), output) for target in targets]
    columns = [score_targets([target], fwd.run(model, images), images)[:, 0] for target, images in zip(bound, erased)]
    return torch.stack(columns, dim=1)
