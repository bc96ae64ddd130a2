"""The base of every layer-based explainer: the layer it reads and how its output is read.

Each kind of method has its own base, and a method inherits only what it uses (the split of captum's
``GradientAttribution`` / ``PerturbationAttribution`` / ``LayerAttribution``):

- :class:`~areacam.core.explainer.Explainer`: holds the model (every explainer);
- :class:`LayerExplainer`: a layer and its layout keywords (CAMs, Eigen-CAM, Score-/Ablation-CAM);
- :class:`~areacam.methods.cam.CAM`: maps from a layer's activations and gradients (the gradient CAMs);
- :class:`~areacam.methods.gradients.GradientExplainer`: input gradients (Saliency and its kin).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from areacam.core.explainer import Explainer
from areacam.layers.find import layer_name, resolve_layer
from areacam.layers.layout import LayerView, ViewArgs

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ["LayerExplainer"]


class LayerExplainer(Explainer):
    """An explainer that reads one layer of the model.

    ``layer`` is a module of ``model`` or its dotted name. The layout keywords ``layout``, ``grid``,
    ``prefix_tokens``, ``layer_output`` and ``reshape`` say how the layer's output is read as
    ``(B, C, *spatial)`` (see :class:`~areacam.layers.LayerView`; by default from its shape).
    ``create_graph``: see :class:`~areacam.core.explainer.Explainer`.
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str, create_graph: bool = False, **view: Unpack[ViewArgs]):
        super().__init__(model, create_graph)
        self.layer = resolve_layer(model, layer)
        self.view = LayerView(**view)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, {layer_name(self.model, self.layer)!r})"
