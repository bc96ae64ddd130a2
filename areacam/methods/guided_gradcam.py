"""Guided Grad-CAM (Selvaraju et al.): guided backpropagation times the upsampled Grad-CAM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from areacam.core.explanation import Explanation, upsample
from areacam.layers.layout import ViewArgs
from areacam.methods.base import LayerExplainer
from areacam.methods.cam import GradCAM
from areacam.methods.gradients import GuidedBackprop, gradient_maps
from areacam.methods.passes import finish
from areacam.methods.registry import register
from areacam.targets.base import Target

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ["GuidedGradCAM"]


@register("guided-gradcam", layer=True, summary="guided backprop x Grad-CAM", peer="captum.attr.GuidedGradCam")
class GuidedGradCAM(LayerExplainer):
    """Guided Grad-CAM: guided backprop times the upsampled Grad-CAM (raw, unnormalised; linear, bilinear
    or trilinear).

    Takes Grad-CAM's arguments (the layer, ``batched`` and the layout keywords). Two passes (guided
    and plain gradients differ), each computing all K targets: a :class:`~areacam.GradCAM` and a
    :class:`~areacam.GuidedBackprop` of the same model.
    """

    keeps_graph = True

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        batched: bool | None = None,
        *,
        create_graph: bool = False,
        **view: Unpack[ViewArgs],
    ):
        super().__init__(model, layer, create_graph, **view)
        self.batched = batched
        self.gradcam = GradCAM(self.model, self.layer, batched, create_graph=create_graph, **view)
        self.guided = GuidedBackprop(self.model, batched, create_graph=create_graph)

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, *spatial)`` batch ``x`` (1, 2 or 3 spatial dims)."""
        cam = self.gradcam(x, targets, forward_args, forward_kwargs)
        guided = self.guided(x, cam.targets, forward_args, forward_kwargs)
        raw = guided.raw * upsample(cam.raw, tuple(x.shape[2:])).unsqueeze(2)
        return finish(raw, gradient_maps(raw), cam.scores, cam.targets, x.shape[2:], cam.layout)
