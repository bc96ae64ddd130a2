"""Layers: finding one by name, capturing its output, reading that output as a feature map, the layer table.

Every capture of a layer goes through :class:`LayerCapture` (explainers, feature maps, embeddings,
filter visualisation) or, for many modules at once, :class:`Hooks` (the layer table, guided ReLUs).
:class:`LayerView` says how a layer's output is read as a ``(B, C, *spatial)`` activation, and
:class:`Layout` is the reading it settled on for one shape; :mod:`areacam.layers.provenance` settles a
shape that ties channels-first and channels-last from the layer's autograd graph. A new layout reader
goes into :mod:`areacam.layers.layout`.
"""

from areacam.layers.capture import LayerCapture
from areacam.layers.find import layer_name, resolve_layer, unwrap_model
from areacam.layers.hooks import Hooks
from areacam.layers.layout import LAYOUTS, AmbiguousLayoutError, LayerView, Layout
from areacam.layers.table import layer_table
from areacam.layers.windows import PatchCapture, SlidingWindow

__all__ = [
    "LAYOUTS",
    "AmbiguousLayoutError",
    "Hooks",
    "LayerCapture",
    "LayerView",
    "Layout",
    "PatchCapture",
    "SlidingWindow",
    "layer_name",
    "layer_table",
    "resolve_layer",
    "unwrap_model",
]
