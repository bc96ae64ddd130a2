"""Region losses: how much of an explanation lies outside the region a model is allowed to use.

``maps`` are ``(B, K, *spatial)`` (an :class:`~areacam.Explanation`'s ``maps``, or CAM ``raw`` with
masks at the layer's size); input gradients are ``(B, K, C, *spatial)`` (a gradient explainer's
``raw``). ``masks`` mark the allowed region, ``1``/``True`` inside: ``(B, *spatial)`` (one region per
sample, shared by the ``K`` targets) or ``(B, K, *spatial)`` (one per target); bool or float in
``[0, 1]`` (soft masks). Every loss returns ``(B, K)``, differentiable in ``maps``/``grads`` (the
masks are constants); average it (``.mean()``) and weigh it in the training loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mask_error", "outside_gradient", "outside_mass"]


def _allowed(masks: Tensor, batch: int, targets: int, spatial: tuple[int, ...], what: str, like: Tensor) -> Tensor:
    """``masks`` as a ``(B, K or 1, *spatial)`` float tensor of ``like``'s dtype and device, or a clear error."""
    if not isinstance(masks, Tensor):
        raise TypeError(f"masks must be a tensor, got {type(masks).__name__}")
    shared, per_target = (batch, *spatial), (batch, targets, *spatial)
    if tuple(masks.shape) == shared:
        masks = masks.unsqueeze(1)
    elif tuple(masks.shape) != per_target:
        raise ValueError(
            f"masks of shape {tuple(masks.shape)} do not fit {what}: expected {shared} (one region per "
            f"sample) or {per_target} (one per target)"
        )
    if masks.dtype != torch.bool:
        if not masks.is_floating_point():
            raise TypeError(f"masks must be bool or float in [0, 1], got dtype {masks.dtype}")
        low, high = (float(masks.min()), float(masks.max())) if masks.numel() else (0.0, 0.0)
        if not (0 <= low and high <= 1):
            raise ValueError(f"float masks must lie in [0, 1], got values in [{low}, {high}]")
    return masks.detach().to(device=like.device, dtype=like.dtype)


def _maps(maps: Tensor) -> tuple[int, int, tuple[int, ...]]:
    if not isinstance(maps, Tensor) or maps.dim() < 3 or not maps.is_floating_point():
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(f"maps must be a float tensor (B, K, *spatial), got {shape}")
    return maps.shape[0], maps.shape[1], tuple(maps.shape[2:])


def outside_mass(maps: Tensor, masks: Tensor) -> Tensor:
    """The share of each map's mass outside its allowed region: ``(B, K)`` in ``[0, 1]``.

    For a map ``M`` (non-negative) and an allowed region ``A`` over pixels ``p``:

    ``outside_mass = sum_p M_p (1 - A_p) / sum_p M_p``, and 0 where the map is all zeros.

    It is 0 when the map lies inside the region and 1 when it lies wholly outside; minimising it moves
    the explanation into the region (attention-guided training). ``maps``: ``(B, K, *spatial)``, e.g.
    an explanation's ``maps`` from an explainer built with ``create_graph=True``; ``masks``:
    ``(B, *spatial)`` or ``(B, K, *spatial)``, 1 inside.
    """
    batch, targets, spatial = _maps(maps)
    allowed = _allowed(masks, batch, targets, spatial, f"maps of shape {tuple(maps.shape)}", maps)
    if maps.numel() and float(maps.detach().min()) < 0:
        raise ValueError(
            f"outside_mass needs non-negative maps (got a minimum of {float(maps.detach().min()):.3g}): "
            "pass an explanation's maps or a CAM's raw, not signed gradients"
        )
    total = maps.flatten(2).sum(2)
    outside = (maps * (1 - allowed)).flatten(2).sum(2)
    empty = total == 0
    return torch.where(empty, torch.zeros_like(total), outside / torch.where(empty, torch.ones_like(total), total))


def outside_gradient(grads: Tensor, masks: Tensor) -> Tensor:
    """Ross et al.'s "right for the right reasons" penalty (RRR, 2017): ``(B, K)``.

    The squared input gradient outside the allowed region, summed over channels ``c`` and pixels ``p``:

    ``outside_gradient = sum_c sum_p ((1 - A_p) * g_cp)^2``.

    ``grads``: ``(B, K, C, *spatial)`` signed input gradients, the ``raw`` of
    ``ac.Saliency(model, create_graph=True)``; ``masks``: ``(B, *spatial)`` or ``(B, K, *spatial)``, 1
    where the model may look (Ross et al.'s annotation ``A`` marks the opposite: ``1 - masks``). Their
    gradient is of the summed log-probabilities, the target
    ``ac.Score(lambda logits: logits.log_softmax(1).sum(1))``; a ``Class`` target penalises the
    gradient of one logit. The paper weighs it by ``lambda_1`` against the cross-entropy.
    """
    if not isinstance(grads, Tensor) or grads.dim() < 4 or not grads.is_floating_point():
        shape = tuple(grads.shape) if isinstance(grads, Tensor) else type(grads).__name__
        raise ValueError(f"grads must be a float tensor (B, K, C, *spatial) of input gradients, got {shape}")
    batch, targets, spatial = grads.shape[0], grads.shape[1], tuple(grads.shape[3:])
    allowed = _allowed(masks, batch, targets, spatial, f"gradients of shape {tuple(grads.shape)}", grads)
    outside = (1 - allowed).unsqueeze(2) * grads
    return outside.square().flatten(2).sum(2)


def mask_error(maps: Tensor, masks: Tensor) -> Tensor:
    """A CAM-mask loss after GAIN's external supervision (Li et al. 2018): ``(B, K)``.

    The mean squared difference between each map ``M`` and its region ``A`` over the ``P`` pixels:

    ``mask_error = (1 / P) sum_p (M_p - A_p)^2``.

    Unlike :func:`outside_mass` it also asks the map to fill the region. ``maps``: ``(B, K, *spatial)``
    in ``[0, 1]`` (an explanation's ``maps``, built with ``create_graph=True``); ``masks``:
    ``(B, *spatial)`` or ``(B, K, *spatial)``, 1 inside. GAIN's other term, the class score of the image
    with the attended region erased, is :func:`~areacam.losses.attention_mining`.
    """
    batch, targets, spatial = _maps(maps)
    allowed = _allowed(masks, batch, targets, spatial, f"maps of shape {tuple(maps.shape)}", maps)
    return (maps - allowed).square().flatten(2).mean(2)
