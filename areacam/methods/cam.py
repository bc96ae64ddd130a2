"""The gradient CAMs: Grad-CAM, Grad-CAM++, HiResCAM, LayerCAM and XGrad-CAM for any target.

A gradient CAM turns a layer's activations and each target's gradient into a ``(B, K, *s)`` map; the
forward pass, the K backward passes and the result are shared (:func:`~areacam.methods.passes.
layer_gradients`). Signals and volumes work alike: activations ``(B, C, *s)`` with 1, 2 or 3 spatial
dims, weights averaged over all of them, maps ``(B, K, *s)``.

- :class:`CAM`: the base; a subclass defines :meth:`CAM.cam`, the map before the ReLU.
- :class:`WeightedCAM`: a CAM whose map is a channel-weighted sum of the activations; a subclass
  defines :meth:`WeightedCAM.weights`.
- :class:`FieldCAM`: a weighted CAM whose weights are linear in a per-channel reduction of the
  gradient, which gives it a forward-mode field (:mod:`areacam.methods.field`) for many targets at
  once; a subclass defines :meth:`FieldCAM.field_tangents` beside its weights.

The gradient-free members of the family are siblings, not subclasses: Score-CAM and Ablation-CAM
(:mod:`areacam.methods.perturbation_cams`) and Eigen-CAM (:mod:`areacam.methods.eigen`).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from areacam.core.explanation import Explanation
from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.layers.capture import LayerCapture
from areacam.layers.layout import ViewArgs
from areacam.layers.windows import inside_window
from areacam.methods.base import LayerExplainer
from areacam.methods.field import NO_SEED, Field, FieldUnavailable, choose_mode
from areacam.methods.passes import finish, layer_gradients
from areacam.methods.registry import register
from areacam.methods.stitched import NO_WINDOW_FIELD, stitched_backward
from areacam.targets.base import Target, as_target_list

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = [
    "CAM",
    "MODES",
    "FieldCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "HiResCAM",
    "LayerCAM",
    "WeightedCAM",
    "XGradCAM",
    "spatial_dims",
]

#: The ``mode=`` values of the CAM explainers: the field above the break-even number of targets
#: (``"auto"``), always the field, or always one backward pass per target.
MODES = ("auto", "field", "backward")

# einsum letters of the spatial dims: the 2-D equations are the original "bchw" ones.
_LETTERS = {1: "l", 2: "hw", 3: "dhw"}


def spatial_dims(tensor: Tensor, first: int) -> tuple[int, ...]:
    """The dims of ``tensor`` from ``first`` on: the spatial dims of ``(B, C, *s)`` (first=2) or ``(B, K, C, *s)``."""
    return tuple(range(first, tensor.dim()))


class CAM(LayerExplainer):
    """Base of the gradient CAMs: subclasses implement :meth:`cam`.

    ``layer`` is a module of ``model`` or its dotted name. ``batched`` picks how the K backward
    passes run (``None``: a batched VJP on accelerators, a loop on the CPU). ``layout``, ``grid``,
    ``prefix_tokens``, ``layer_output`` and ``reshape`` say how the layer's output is read as
    ``(B, C, h, w)`` (see :class:`~areacam.layers.LayerView`; by default from its shape). ``mode``
    (``"auto"``, ``"field"``, ``"backward"``) picks between backward passes and the forward-mode field
    of the methods that have one (:class:`FieldCAM`); the others answer ``"auto"`` with backward
    passes and refuse ``"field"``.

    ``create_graph=True`` keeps the graph of ``raw``, ``maps`` and ``scores`` to the parameters and the
    input, for a loss on the explanation (see :mod:`areacam.training`). The model then runs in the
    caller's train/eval mode (the one exception to eval mode), its buffers are restored, and every
    target takes its own backward pass (no batched VJP, no field: ``mode="field"`` is refused). In
    train mode, BatchNorm couples the samples of a batch, and each sample's gradient is that of the
    batch sum.
    """

    keeps_graph = True

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        batched: bool | None = None,
        *,
        mode: str = "auto",
        create_graph: bool = False,
        **view: Unpack[ViewArgs],
    ):
        super().__init__(model, layer, create_graph, **view)
        self.batched = batched
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if create_graph and mode == "field":
            raise ValueError(
                f"{type(self).__name__}(mode='field') cannot keep a graph (create_graph=True): the field's "
                "forward-mode products are detached; use mode='auto' or mode='backward'"
            )
        self.mode = self._mode(mode)

    def _mode(self, mode: str) -> str:
        """The mode this method runs in: a CAM without a field has only backward passes."""
        if mode == "field":
            raise ValueError(
                f"{type(self).__name__} has no field (mode='field'): its weights need per-position "
                "gradients, not a per-channel reduction of them; only Grad-CAM and XGrad-CAM have one"
            )
        return "backward"

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, *spatial)`` batch ``x`` (1, 2 or 3 spatial dims)."""
        return self.backward(x, targets, self.forward_args(x, forward_args, forward_kwargs))

    def backward(self, x: Tensor, targets: Target | Sequence[Target], fwd: ForwardArgs = NO_ARGS) -> Explanation:
        """The explanation from one forward pass and one backward pass per target."""
        window = inside_window(self.model, self.layer)
        if window is not None:  # a layer inside a SlidingWindow: per-patch maps, stitched
            if self.create_graph:
                raise ValueError(
                    f"{type(self).__name__}(create_graph=True) at a layer inside a SlidingWindow: the stitched "
                    "maps are detached; explain the inner model per patch to keep the graph"
                )
            return stitched_backward(self, window, x, targets)
        acts, grads, scores, targets, layout = layer_gradients(
            self.model, self.layer, x, targets, self.batched, self.view, fwd, self.create_graph
        )
        raw = torch.relu(self.cam(acts, grads))
        return finish(raw, raw, scores, targets, x.shape[2:], layout)

    @abstractmethod
    def cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        """Map before the ReLU: ``acts (B, C, *s)``, ``grads (B, K, C, *s)`` -> ``(B, K, *s)``."""


class WeightedCAM(CAM):
    """A CAM whose map is the channel sum of the activations weighted by :meth:`weights`."""

    def cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        weights = self.weights(acts, grads)
        s = _LETTERS[acts.dim() - 2]
        return torch.einsum(f"bkc,bc{s}->bk{s}", weights, acts)

    @abstractmethod
    def weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        """Channel weights ``(B, K, C)`` from ``acts (B, C, *s)`` and ``grads (B, K, C, *s)``."""


class FieldCAM(WeightedCAM):
    """A weighted CAM whose weights are a per-channel reduction of the gradient: it has a field.

    ``field(x)`` computes the forward-mode field of ``x`` once (``C`` Jacobian-vector products);
    calling it with any number of targets gives the same :class:`~areacam.Explanation` as backward
    passes. ``mode="auto"`` uses the field for more targets than
    :func:`~areacam.methods.field.break_even` of the layer's channels. A subclass defines
    :meth:`field_tangents` together with its :meth:`weights` (a subclass that changes the weights
    without the tangents answers by backward passes).
    """

    def _mode(self, mode: str) -> str:
        if self.has_field:
            return mode
        return super()._mode(mode)

    @property
    def has_field(self) -> bool:
        """Whether this class's tangents belong to its weights (it defines both, or inherits both) and its
        map is the weighted sum the field computes."""
        cls = type(self)
        return _owner(cls, "field_tangents") is _owner(cls, "weights") and _owner(cls, "cam") is WeightedCAM

    @abstractmethod
    def field_tangents(self, acts: Tensor) -> Tensor:
        """Per-channel tangents ``(B, C, *s)`` whose JVPs give the weights (see :mod:`areacam.methods.field`)."""

    def field(
        self,
        x: Tensor,
        max_memory: int | None = None,
        strict: bool = False,
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Field:
        """The forward-mode field of ``x`` at this layer: call it with any number of targets.

        ``max_memory`` (bytes) bounds the working memory of the products; ``strict=True`` raises
        :class:`~areacam.methods.field.FieldUnavailable` where the model has an op without a
        forward-mode rule (else the field answers by backward passes, with a warning).
        """
        if inside_window(self.model, self.layer) is not None:
            raise ValueError(NO_WINDOW_FIELD)
        if not self.has_field:
            raise TypeError(
                f"{type(self).__name__} changes its weights but not its field tangents: it has no field; "
                "use backward passes"
            )
        if self.create_graph:
            raise ValueError(
                f"{type(self).__name__}(create_graph=True) has no field: the field's products are detached; "
                "call the explainer, which takes one backward pass per target"
            )
        return Field(self, x, max_memory, strict=strict, fwd=self.forward_args(x, forward_args, forward_kwargs))

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` by backward passes or the field, as ``mode`` says (see :class:`FieldCAM`)."""
        targets = as_target_list(targets)
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        if inside_window(self.model, self.layer) is not None:
            if self.mode == "field":
                raise ValueError(f"{NO_WINDOW_FIELD}; use mode='backward' or mode='auto'")
            return self.backward(x, targets, fwd)
        if self.mode == "backward" or self.create_graph:  # the graph: one backward pass per target
            return self.backward(x, targets, fwd)
        if self.mode == "auto":
            if len(targets) <= 1 or choose_mode("auto", len(targets), self._channel_count(x, fwd)) == "backward":
                return self.backward(x, targets, fwd)
        strict = self.mode == "field"
        unseeded = next((target for target in targets if not target.field_seed), None)
        if unseeded is not None:
            return self._without_field(f"{unseeded!r} has no seed for a field: {NO_SEED}", strict, x, targets, fwd)
        field = Field(self, x, strict=strict, fwd=fwd)
        if field.fallback is not None:
            return self.backward(x, targets, fwd)
        try:
            return field(targets)
        except FieldUnavailable as err:
            return self._without_field(str(err), strict, x, targets, fwd)

    def _without_field(
        self, reason: str, strict: bool, x: Tensor, targets: list[Target], fwd: ForwardArgs
    ) -> Explanation:
        """``mode="field"``: raise ``reason``; ``"auto"``: warn and answer with backward passes."""
        if strict:
            raise FieldUnavailable(f"{reason}; use mode='backward' or mode='auto'")
        warnings.warn(f"{reason}: answering with backward passes instead", RuntimeWarning, stacklevel=3)
        return self.backward(x, targets, fwd)

    def _channel_count(self, x: Tensor, fwd: ForwardArgs = NO_ARGS) -> int:
        """Channels of the layer for inputs shaped like ``x``: one sample's pass up to the layer."""
        x = check_input(self.model, x)
        with (
            explaining(self.model),
            LayerCapture(self.model, self.layer, self.view, mode="value", stop=True) as capture,
        ):
            capture.run(x[:1], fwd.take(slice(0, 1)))
            acts = capture.activation()
        return acts.shape[1] if acts.dim() == x.dim() else 0  # 0: the backward path names the problem


def _owner(cls: type, name: str) -> type | None:
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


@register("gradcam", layer=True, summary="Grad-CAM", aliases=("grad-cam",), peer="pytorch_grad_cam.GradCAM")
class GradCAM(FieldCAM):
    """Grad-CAM: activations weighted by the spatial mean of their gradients (Selvaraju et al.)."""

    def weights(self, acts: Tensor, grads: Tensor) -> Tensor:
        return grads.mean(dim=spatial_dims(grads, 3))

    def field_tangents(self, acts: Tensor) -> Tensor:
        # The spatial mean: a constant shift of each channel by 1 / (number of positions).
        return torch.full_like(acts, 1.0 / acts[0, 0].numel())


@register(
    "gradcam++", layer=True, summary="Grad-CAM++", aliases=("gradcampp",), peer="pytorch_grad_cam.GradCAMPlusPlus"
)
class GradCAMPlusPlus(WeightedCAM):
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


@register("hirescam", layer=True, summary="HiResCAM", peer="pytorch_grad_cam.HiResCAM")
class HiResCAM(CAM):
    """HiResCAM: channel sum of gradient x activation (Draelos & Carin)."""

    def cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        s = _LETTERS[acts.dim() - 2]
        return torch.einsum(f"bkc{s},bc{s}->bk{s}", grads, acts)


@register("layercam", layer=True, summary="LayerCAM", peer="pytorch_grad_cam.LayerCAM")
class LayerCAM(CAM):
    """LayerCAM: channel sum of ReLU(gradient) x activation (Jiang et al.)."""

    def cam(self, acts: Tensor, grads: Tensor) -> Tensor:
        s = _LETTERS[acts.dim() - 2]
        return torch.einsum(f"bkc{s},bc{s}->bk{s}", torch.relu(grads), acts)


@register("xgradcam", layer=True, summary="XGrad-CAM", aliases=("xgrad-cam",), peer="pytorch_grad_cam.XGradCAM")
class XGradCAM(FieldCAM):
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
