"""What the layers learn: filters and feature maps by depth, and a t-SNE of penultimate features."""

from __future__ import annotations

import areacam as ac
from areacam.app.demo.common import Context, Figure, sample_per_class
from areacam.core.explanation import normalize_maps
from areacam.viz.images import panel_grid, to_rgb

__all__ = ["feature_maps_by_depth", "filters_by_depth", "tsne_features"]

BLOCKS = [f"features.block{i}.relu" for i in (1, 2, 3, 4, 5)]


def filters_by_depth(ctx: Context) -> list[Figure]:
    """Shapes classifier: first-layer kernels, and images maximising filters of each block."""
    model = ctx.model("shapes_classifier")
    size = ctx.settings("shapes_classifier")["size"]
    count, steps = (4, 16) if ctx.quick else (8, 96)
    rows, names = [], []
    for layer in BLOCKS:
        vis = ac.FilterVisualizer(
            model, layer, size=size, channels=3, steps=steps, lr=0.08, random_state=0, layout="nchw"
        )
        images = vis(list(range(min(count, vis.num_filters()))))
        rows.append(list(to_rgb(images.clamp(0, 1))))
        names.append(layer.split(".")[1])
    panel_grid(rows, path=ctx.path("filters_by_depth.png"), row_titles=names, cell=1.3)
    tiles, fig = ac.filter_weights(model, path=ctx.path("first_layer_kernels.png"), ncols=8, scale=10)
    del fig
    return [
        Figure(
            "filters_by_depth.png",
            "classifier",
            "Filters by depth",
            f"Shapes classifier: images optimised to excite {count} filters of each block (gradient ascent, "
            "areacam.features.FilterVisualizer). Early blocks prefer colours and edges, deep ones textures "
            "and parts.",
        ),
        Figure(
            "first_layer_kernels.png",
            "classifier",
            "First-layer kernels",
            f"The {len(tiles)} 3x3 RGB kernels of the first convolution (ac.filter_weights), centred on grey.",
        ),
    ]


def feature_maps_by_depth(ctx: Context) -> list[Figure]:
    """Shapes classifier: the first channels of each block's activation for one image."""
    model = ctx.model("shapes_classifier")
    data = ctx.data("shapes_classifier")
    x = data["x_test"][sample_per_class(data["y_test"], 1)]
    rows, names = [], []
    for layer in BLOCKS:
        acts, _fig = ac.feature_maps(model, layer, x, channels=8, layout="nchw")
        maps, _ = normalize_maps(acts[:, :8])
        rows.append([to_rgb(x)[0]] + [m.numpy() for m in maps[0]])
        names.append(f"{layer.split('.')[1]} {acts.shape[-1]}x{acts.shape[-2]}")
    panel_grid(
        rows,
        path=ctx.path("feature_maps_by_depth.png"),
        row_titles=names,
        col_titles=["input"] + [f"ch {c}" for c in range(8)],
        cell=1.3,
    )
    return [
        Figure(
            "feature_maps_by_depth.png",
            "classifier",
            "Feature maps by depth",
            "Shapes classifier: the first 8 channels of each block's activation for one test image "
            "(ac.feature_maps), each scaled on its own. Resolution halves per block.",
        )
    ]


def tsne_features(ctx: Context) -> list[Figure]:
    """Digits classifier: a 2-D t-SNE of the penultimate-layer features, thumbnails coloured by digit."""
    model = ctx.model("digits_classifier")
    data = ctx.data("digits_classifier")
    n = 150 if ctx.quick else 400
    x, y = data["x_test"][:n], data["y_test"][:n]
    emb = ac.embed(model, "classifier.relu2", x, method="tsne", labels=y, perplexity=20.0, thumbnail=16)
    emb.plot(ctx.path("tsne_features.png"), thumbnails=True, zoom=0.9)
    return [
        Figure(
            "tsne_features.png",
            "classifier",
            "t-SNE of features",
            f"Digits classifier: the penultimate layer (classifier.relu2) of {len(y)} held-out digits "
            "embedded in 2-D with t-SNE (ac.embed), drawn as thumbnails. Tight, separate clusters "
            "mean the classes are easy to tell apart at that depth.",
        )
    ]
