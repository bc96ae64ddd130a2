"""Looking inside a model: what a layer's filters respond to, its feature maps, embeddings of its pooled
features, and the interactive region explorer (every box's Grad-CAM on one page)."""

from areacam.inspect.embed import Embedding, embed
from areacam.inspect.explorer import explorer
from areacam.inspect.features import FilterVisualizer, feature_maps, filter_weights

__all__ = ["Embedding", "FilterVisualizer", "embed", "explorer", "feature_maps", "filter_weights"]
