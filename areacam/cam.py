"""The gradient CAMs: Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM and XGrad-CAM for any target.

Each method is a small subclass that turns a layer's activations and each target's gradient into
a ``(B, K, h, w)`` map; the forward pass, the K backward passes and the result are shared. Signals
and volumes work alike: activations ``(B, C, *s)`` with 1, 2 or 3 spatial dims, weights averaged
over all of them, maps ``(B, K, *s)``. The gradient-free members of the family (Score-CAM,
Ablation-CAM, Eigen-CAM) are in :mod:`areacam.cam_free`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .base import Explainer, finish, layer_gradients
from .explanation import Explanation
from .field import Field, check_mode, field_call
from .layers import LayerView, resolve_layer
from .targets import Target

__all__ = ["CAM", "GradCAM", "GradCAMPlusPlus", "HiResCAM", "LayerCAM", "XGradCAM", "spatial_dims"]

# einsum letters of the spatial dims: the 2-D equations are the original "bchw" ones.
_LETTERS = {1: "l", 2: "hw", 3: "dhw"}


def spatial_dims(tensor: Tensor, first: int) -> tuple[int, ...]:
    """The dims of ``tensor`` from ``first`` on: the spatial dims of ``(B, C, *s)`` (first=2) or ``(B, K, C, *s)``."""
    return tuple(range(first, tensor.dim()))


class CAM(Explainer):
    """Template for CAM methods: subclasses implement :meth:`cam`.

    ``layer`` is a module of ``model`` or its dotted name. ``batched`` picks how the K backward
    passes run (``None``: a batched VJP on accelerators, a loop on the CPU). ``layout``, ``grid``,
    ``prefix_tokens``, ``layer_output`` and ``reshape`` say how the layer's output is read as
    ``(B, C, h, w)`` (see :class:`~areacam.layers.LayerView`; by default from its shape). ``mode``
    picks between the backward passes and a forward-mode field (:mod:`areacam.field`) for the
    methods that have one: ``"auto"`` (the field above the break-even number of targets),
    ``"field"`` or ``"backward"``.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        batched: bool | None = None,
        *,
        layout: str | None = None,
        grid: Sequence[int] | None = None,
        prefix_tokens: int | None = None,
        layer_output: object = None,
        reshape: Callable[[Tensor], Tensor] | None = None,
        mode: str = "auto",
    ):
        super().__init__(model)
        self.layer = resolve_layer(model, layer)
        self.batched = batched
        self.view = LayerView(layout, grid, prefix_tokens, layer_output, reshape)
        self.mode = check_mode(self, mode)

    def __call__(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, *spatial)`` batch ``x`` (1, 2 or 3 spatial dims)."""
        if self.mode != "backward":
            return field_call(self, x, targets)
        return self.backward(x, targets)

    def backward(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        """The explanation from one forward pass and one backward pass per target."""
        acts, grads, scores, targets, layout = layer_gradients(
            self.model, self.layer, x, targets, self.batched, self.view
        )
        raw = torch.relu(self.cam(acts, grads))
        return finish(raw, raw, scores, targets, x.shape[2:], layout)

    def field(self, x: Tensor, max_memory: int | None = None) -> Field:
        """The forward-mode field of ``x`` at this layer: call it with any number of targets."""
        return Field(self, x, max_memory)

    def field_tangents(self, acts: Tensor) -> Tensor:  # pragma: no cover - only methods with a field
        """Per-channel tangents ``(B, C, h, w)`` whose JVPs give the weights (see :mod:`areacam.field`)."""
        raise NotImplementedError

    def cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        """Map before the ReLU: ``acts (B, C, *s)``, ``grads (B, K, C, *s)`` -> ``(B, K, *s)``."""
        weights = self.weights(acts, grads)
        s = _LETTERS[acts.dim() - 2]
        return torch.einsum(f"bkc,bc{s}->bk{s}", weights, acts)

    def weights(self, acts: Tensor, grads: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Channel weights ``(B, K, C)``."""
        raise NotImplementedError


class GradCAM(CAM):
    """Grad-CAM: activations weighted by the spatial mean of their gradients (Selvaraju et al.)."""

    def weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        return grads.mean(dim=spatial_dims(grads, 3))

    def field_tangents(self, acts: Tensor) -> Tensor:
        # The spatial mean: a constant shift of each channel by 1 / (number of positions).
        return torch.full_like(acts, 1.0 / acts[0, 0].numel())


class GradCAMPlusPlus(CAM):
    """Grad-CAM++ with the closed-form weights of eq. 19 (Chattopadhay et al.).

    The second and third derivatives of exp(score) are written with powers of the first gradient,
    so no higher-order autograd runs (it is zero on ReLU nets).
    """

    eps = 1e-6

    def weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        grads2 = grads.pow(2)
        grads3 = grads2 * grads
        act_sums = acts.sum(dim=spatial_dims(acts, 2))
        act_sums = act_sums.view(*act_sums.shape[:1], 1, act_sums.shape[1], *[1] * (acts.dim() - 2))
        alpha = grads2 / (2 * grads2 + act_sums * grads3 + self.eps)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (torch.relu(grads) * alpha).sum(dim=spatial_dims(grads, 3))


class HiResCAM(CAM):
    """HiResCAM: channel sum of gradient x activation (Draelos & Carin)."""

    def cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        s = _LETTERS[acts.dim() - 2]
        return torch.einsum(f"bkc{s},bc{s}->bk{s}", grads, acts)


class LayerCAM(CAM):
    """LayerCAM: channel sum of ReLU(gradient) x activation (Jiang et al.)."""

    def cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        s = _LETTERS[acts.dim() - 2]
        return torch.einsum(f"bkc{s},bc{s}->bk{s}", torch.relu(grads), acts)


class XGradCAM(CAM):
    """XGrad-CAM (Fu et al.): channel weights ``sum(grad * act) / (sum(act) + eps)`` over space.

    ``eps = 1e-7`` as in pytorch-grad-cam.
    """

    eps = 1e-7

    def weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        space = tuple(range(2, acts.dim()))
        sums = acts.sum(dim=space).view(*acts.shape[:2], *(1,) * len(space))
        normalised = (acts / (sums + self.eps)).unsqueeze(1)  # (B, 1, C, h, w)
        return (grads * normalised).sum(dim=tuple(range(3, grads.dim())))

    def field_tangents(self, acts: Tensor) -> Tensor:
        # The activation-weighted sum: channel c moves in proportion to its own normalised activations.
        space = tuple(range(2, acts.dim()))
        return acts / (acts.sum(dim=space, keepdim=True) + self.eps)
