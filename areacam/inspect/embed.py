"""Embeddings of a layer's pooled features: t-SNE / PCA coordinates, a thumbnail scatter, a projector export."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.io import atomic_save, atomic_write
from areacam._util.optional import require
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.layers.capture import LayerCapture
from areacam.layers.find import layer_name, resolve_layer
from areacam.layers.layout import LayerView
from areacam.viz.images import save_figure, save_png, to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["PROJECTIONS", "Embedding", "embed", "pooled_features"]

PROJECTIONS = ("tsne", "pca")
_SPRITE_MAX = 8192  # TensorBoard's largest sprite side


def pooled_features(
    model: nn.Module,
    layer: nn.Module | str,
    images: Tensor,
    batch_size: int = 64,
    view: LayerView | None = None,
) -> Tensor:
    """Global-average-pooled activations of ``layer``: ``(N, C)`` float32 (a ``(N, D)`` output as is).

    ``view`` reads the layer's output as ``(B, C, *spatial)`` (default: from its shape; a token
    layer is pooled over its grid tokens only). The forward pass stops at the layer; the model runs
    in eval mode under ``torch.no_grad()``.
    """
    images = check_input(model, images, spatial=(2,), method="embed (pooled 2-D feature maps)")
    chunks = []
    with explaining(model), LayerCapture(model, layer, view, mode="value", stop=True) as capture:
        for start in range(0, images.shape[0], batch_size):
            capture.run(images[start : start + batch_size])
            value = capture.captured()
            acts = value if value.dim() == 2 else capture.activation().flatten(2).mean(dim=2)
            chunks.append(acts.float().cpu())
    return torch.cat(chunks)


@dataclass
class Embedding:
    """Pooled features of ``N`` images and their low-dimensional coordinates.

    - ``features``: ``(N, D)`` pooled activations; ``coords``: ``(N, dims)``.
    - ``labels``: ``(N,)`` ints or ``None``; ``thumbnails``: ``(N, t, t, 3)`` uint8.
    """

    features: np.ndarray
    coords: np.ndarray
    labels: np.ndarray | None
    thumbnails: np.ndarray
    method: str
    layer: str = ""

    def plot(self, path: str | Path | None = None, thumbnails: bool = True, zoom: float = 0.6) -> Figure:
        """Scatter of ``coords`` coloured by label; in 2-D with image thumbnails. Saved as PNG if ``path``."""
        from matplotlib.figure import Figure
        from matplotlib.offsetbox import AnnotationBbox, OffsetImage

        dims = self.coords.shape[1]
        fig = Figure(figsize=(7, 7))
        ax: Any = fig.add_subplot(111, projection="3d" if dims == 3 else None)  # Axes or Axes3D
        if self.labels is not None:
            points = ax.scatter(*self.coords.T, c=self.labels, cmap="tab10", s=12)
            ax.legend(*points.legend_elements(), title="label", loc="best", fontsize=7)
        else:
            ax.scatter(*self.coords.T, c="tab:blue", s=12)
        if thumbnails and dims == 2:
            for (px, py), thumb in zip(self.coords, self.thumbnails):
                box = AnnotationBbox(OffsetImage(thumb, zoom=zoom), (px, py), frameon=False)
                ax.add_artist(box)
        ax.set_title(f"{self.method.upper()} of {self.layer or 'features'}")
        fig.tight_layout()
        if path is not None:
            save_figure(fig, path)
        return fig

    def export(self, directory: str | Path, names: Sequence[str] | None = None) -> Path:
        """Files the TensorBoard projector opens: ``tensors.tsv`` (the ``(N, D)`` features),
        ``metadata.tsv``, ``sprite.png`` and ``projector_config.pbtxt``; returns ``directory``.

        ``names`` optionally gives a class name per label value for the metadata.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_save(directory / "tensors.tsv", lambda tmp: np.savetxt(tmp, self.features, delimiter="\t", fmt="%.6g"))
        rows = [str(i) for i in range(len(self.features))]
        if self.labels is not None:  # two columns need a header line
            named = [names[int(v)] if names is not None else str(int(v)) for v in self.labels]
            rows = ["index\tlabel"] + [f"{i}\t{name}" for i, name in enumerate(named)]
        atomic_write(directory / "metadata.tsv", "\n".join(rows) + "\n")
        sprite, side = _sprite(self.thumbnails)
        save_png(directory / "sprite.png", sprite)
        config = (
            "embeddings {\n"
            f'  tensor_name: "{self.layer or "features"}"\n'
            f"  tensor_shape: {self.features.shape[0]}\n"
            f"  tensor_shape: {self.features.shape[1]}\n"
            '  tensor_path: "tensors.tsv"\n'
            '  metadata_path: "metadata.tsv"\n'
            "  sprite {\n"
            '    image_path: "sprite.png"\n'
            f"    single_image_dim: {side}\n"
            f"    single_image_dim: {side}\n"
            "  }\n"
            "}\n"
        )
        atomic_write(directory / "projector_config.pbtxt", config)
        return directory


def _sprite(thumbnails: np.ndarray) -> tuple[np.ndarray, int]:
    """Square sprite of the thumbnails, row-major, shrunk to fit TensorBoard's 8192 px limit."""
    count, side = len(thumbnails), thumbnails.shape[1]
    per_row = math.ceil(math.sqrt(count))
    if per_row * side > _SPRITE_MAX:
        side = _SPRITE_MAX // per_row
        thumbnails = np.stack([cv2.resize(t, (side, side), interpolation=cv2.INTER_AREA) for t in thumbnails])
    sprite = np.full((per_row * side, per_row * side, 3), 255, dtype=np.uint8)
    for i, thumb in enumerate(thumbnails):
        r, c = divmod(i, per_row)
        sprite[r * side : (r + 1) * side, c * side : (c + 1) * side] = thumb
    return sprite, side


def embed(
    model: nn.Module,
    layer: nn.Module | str,
    images: Tensor,
    method: str = "tsne",
    dims: int = 2,
    labels: Sequence[int] | Tensor | np.ndarray | None = None,
    perplexity: float = 30.0,
    random_state: int = 0,
    batch_size: int = 64,
    thumbnail: int = 32,
    *,
    layout: str | None = None,
    grid: Sequence[int] | None = None,
    prefix_tokens: int | None = None,
    layer_output: object = None,
    reshape: Callable[[Tensor], Tensor] | None = None,
) -> Embedding:
    """Embed ``images`` ``(N, C, H, W)`` by the pooled activations of ``layer`` with t-SNE or PCA.

    ``dims`` is 2 or 3; t-SNE needs more images than its ``perplexity``. The layout keywords read
    the layer's output as in the CAM explainers (a token layer is pooled over its grid tokens).
    Returns an :class:`Embedding` (``.plot(path)``, ``.export(directory)``).
    """
    if method not in PROJECTIONS:
        raise ValueError(f"unknown method {method!r}; choose from {PROJECTIONS}")
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ValueError(f"dims must be 2 or 3, got {dims!r}")
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}")
    count = images.shape[0]
    if labels is not None:
        labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64).reshape(-1)
        if len(labels) != count:
            raise ValueError(f"got {len(labels)} labels for {count} images")
    if method == "tsne" and not 0 < perplexity < count:
        raise ValueError(
            f"t-SNE with perplexity={perplexity} needs more than {perplexity:g} images, got {count}; "
            "lower perplexity or use method='pca'"
        )
    if method == "pca" and count < dims:
        raise ValueError(f"PCA to {dims} dimensions needs at least {dims} images, got {count}")
    view = LayerView(layout, grid, prefix_tokens, layer_output, reshape)
    features = pooled_features(model, layer, images, batch_size, view).numpy().astype(np.float64)
    if method == "pca" and features.shape[1] < dims:
        raise ValueError(
            f"PCA to {dims} dimensions needs at least {dims} features, the layer gives {features.shape[1]}"
        )
    if method == "pca":
        PCA = require("sklearn.decomposition", "ac.embed").PCA
        coords = PCA(n_components=dims, random_state=random_state).fit_transform(features)
    else:
        TSNE = require("sklearn.manifold", "ac.embed").TSNE
        coords = TSNE(n_components=dims, perplexity=perplexity, random_state=random_state, init="pca").fit_transform(
            features
        )
    rgb = to_rgb(images)
    thumbs = np.stack([cv2.resize(img, (thumbnail, thumbnail), interpolation=cv2.INTER_AREA) for img in rgb])
    name = layer if isinstance(layer, str) else layer_name(model, resolve_layer(model, layer))
    return Embedding(features.astype(np.float32), coords, labels, thumbs, method, name)
