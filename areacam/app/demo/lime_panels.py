"""LIME panels: superpixels, weights and the top regions, for a classifier and a VAE region."""

from __future__ import annotations

import numpy as np
import torch

import areacam as ac
from areacam.app.demo.common import Context, Figure, sample_per_class
from areacam.data import SHAPE_CLASSES
from areacam.viz.images import draw_box, overlay, panel_grid, to_rgb

__all__ = ["lime_autoencoder", "lime_classifier"]


def _boundaries(rgb: np.ndarray, segments: np.ndarray) -> np.ndarray:
    from skimage.segmentation import mark_boundaries

    return (mark_boundaries(rgb, segments, color=(1, 1, 0)) * 255).round().astype(np.uint8)


def _top_regions(rgb: np.ndarray, segments: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    """The image with only its ``count`` most positive superpixels shown, the rest dimmed."""
    top = np.argsort(weights)[::-1][:count]
    keep = np.isin(segments, top[weights[top] > 0])
    return np.where(keep[..., None], rgb, (rgb * 0.25).astype(np.uint8))


def _explainer(ctx: Context, model: torch.nn.Module, segments: int):
    return ac.Lime(
        model,
        num_samples=120 if ctx.quick else 600,
        batch_size=60,
        random_state=0,
        segmentation="slic",
        segmentation_params={"n_segments": segments, "compactness": 10.0},
        progress=False,
    )


def _rows(x: torch.Tensor, expl, extra: list[np.ndarray] | None = None) -> list[list[np.ndarray]]:
    rgb = to_rgb(x)
    rows = []
    for i in range(len(rgb)):
        k = i if expl.maps.shape[1] > 1 else 0
        seg = expl.segments[i].numpy()
        first = extra[i] if extra is not None else rgb[i]
        rows.append(
            [
                first,
                _boundaries(rgb[i], seg),
                overlay(rgb[i], expl.maps[i, k]),
                _top_regions(rgb[i], seg, expl.raw[i, k].numpy(), 4),
            ]
        )
    return rows


def lime_classifier(ctx: Context) -> list[Figure]:
    """Shapes classifier: LIME of the true class for one image per class."""
    model = ctx.model("shapes_classifier")
    data = ctx.data("shapes_classifier")
    idx = sample_per_class(data["y_test"], 3)
    x, y = data["x_test"][idx], data["y_test"][idx]
    expl = _explainer(ctx, model, 30)(x, ac.Class(y.tolist()))
    titles = [[f"input: {SHAPE_CLASSES[int(c)]}", "superpixels", "LIME weights", "top 4 regions"] for c in y]
    panel_grid(_rows(x, expl), path=ctx.path("lime_classifier.png"), titles=titles)
    return [
        Figure(
            "lime_classifier.png",
            "classifier",
            "LIME panels: classifier",
            "Shapes classifier: SLIC superpixels, the weight LIME's linear surrogate gives each of them "
            "for the true class, and the 4 superpixels that raise the score most (the rest dimmed).",
        )
    ]


def lime_autoencoder(ctx: Context) -> list[Figure]:
    """VAE: LIME of the reconstruction inside a box (a region target of a dense output)."""
    model = ctx.model("vae")
    data = ctx.data("vae")
    x = data["x_test"][sample_per_class(data["y_test"], 3)]
    box = (8, 8, 24, 24)
    expl = _explainer(ctx, model, 25)(x, ac.Area(box=box))
    boxed = [draw_box(img, box) for img in to_rgb(x)]
    cols = ["input + box", "superpixels", "LIME weights", "top 4 regions"]
    panel_grid(_rows(x, expl, boxed), path=ctx.path("lime_vae_area.png"), col_titles=cols)
    return [
        Figure(
            "lime_vae_area.png",
            "autoencoder",
            "LIME panels: a VAE region",
            "VAE on digits: LIME for the sum of the reconstruction inside the red box (ac.Area). "
            "Hiding a superpixel (filling it with its mean) changes the reconstructed box; the surrogate's "
            "weights show which input regions it depends on.",
        )
    ]
