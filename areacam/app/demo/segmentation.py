"""Segmentation debugging figures: Seg-Grad-CAM on FCN and U-Net, and CAM methods across architectures."""

from __future__ import annotations

import torch

import areacam as ac
from areacam.app.demo.common import Context, Figure, label_colors, sample_per_class
from areacam.app.demo.layer_choice import measured_layer
from areacam.data import SHAPE_CLASSES
from areacam.viz.images import overlay, panel_grid, to_rgb

__all__ = ["LAYERS", "cams_across_architectures", "segment_debugging"]

# Layers compared with the measured best one (layer_choice.measured_layer) per segmenter (64x64 inputs). Every
# demo model is channels-first; layout="nchw" settles layers whose channel count equals their grid side.
LAYERS = {
    "fcn": ["backbone.features.4", "backbone.features.11"],
    "unet": ["encoder.layer2", "encoder.layer4"],
}
TITLES = {"fcn": "FCN-8s (AlexNet)", "unet": "U-Net (ResNet-18)"}


def _samples(ctx: Context, key: str, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = ctx.data(key)
    idx = sample_per_class(data["y_test"], count)
    return data["x_test"][idx], data["y_test"][idx], data["m_test"][idx]


def segment_debugging(ctx: Context, key: str) -> list[Figure]:
    """Input | ground truth | prediction | Seg-Grad-CAM of the true shape class | of the background."""
    model = ctx.model(key)
    x, y, masks = _samples(ctx, key, 3)
    with torch.no_grad():
        pred = model.eval()(x).argmax(1)
    choice = measured_layer(ctx, key)
    layer = choice.layer
    shape = ac.GradCAM(model, layer, layout="nchw")(x, [ac.Segment(int(c) + 1) for c in y] + [ac.Segment(0)])
    rgb = to_rgb(x)
    rows = []
    for i in range(len(y)):
        rows.append(
            [
                rgb[i],
                label_colors(masks[i]),
                label_colors(pred[i]),
                overlay(rgb[i], shape.maps[i, i]),
                overlay(rgb[i], shape.maps[i, -1]),
            ]
        )
    titles = [
        [
            f"input: {SHAPE_CLASSES[int(y[i])]}",
            "ground truth",
            "prediction",
            f"Segment({int(y[i]) + 1})" + (" - none predicted" if bool(shape.degenerate[i, i]) else ""),
            "Segment(0) background",
        ]
        for i in range(len(y))
    ]
    file = f"segment_{key}.png"
    panel_grid(rows, path=ctx.path(file), titles=titles)
    name = TITLES[key]
    link = _explorer(ctx, key, x[:1]) if key in EXPLORER_LAYERS else None
    return [
        Figure(
            file,
            "segmentation",
            f"Segmentation debugging: {name}",
            f"{name} trained on shapes (mask colours: red circle, green square, blue triangle). "
            f"Seg-Grad-CAM at {layer} of the pixels predicted as the true shape class, and of the "
            "background. A wrong or empty prediction shows up as a map that ignores the shape. The layer "
            f"is measured: its map's maximum lies on the shape for {choice.scores[layer]:.0%} of "
            f"{choice.count} held-out images (pointing game), against "
            + ", ".join(f"{name} {choice.scores[name]:.0%}" for name in choice.others(LAYERS[key]))
            + ".",
            link=link,
        )
    ]


# The explorer's layer: few channels at a fine grid keep the page small and the maps sharp.
EXPLORER_LAYERS = {"unet": "decoder.blocks.3"}


def _explorer(ctx: Context, key: str, x: torch.Tensor) -> str:
    """Write the region explorer of one sample under ``explorers/``; returns its path relative to the report."""
    names = ["background", *SHAPE_CLASSES]
    page = f"explorers/{key}.html"
    ac.explorer(
        ctx.model(key),
        x,
        EXPLORER_LAYERS[key],
        path=ctx.out / page,
        show="argmax",
        class_names=names,
        title=f"areacam explorer: {TITLES[key]} at {EXPLORER_LAYERS[key]}",
    )
    return page


def cams_across_architectures(ctx: Context) -> list[Figure]:
    """Grad-CAM vs Grad-CAM++ of the true shape's logit on its pixels, at several layers of FCN and U-Net."""
    rows: list[list] = []
    names: list[str] = []
    for key in ("fcn", "unet"):
        model = ctx.model(key)
        x, y, masks = _samples(ctx, key, 2)
        rgb = to_rgb(x)
        # The true shape's logit over its ground-truth pixels: informative whatever the model predicts.
        targets = [ac.Area(mask=(masks[i] > 0), channel=int(y[i]) + 1) for i in range(len(y))]
        if not rows:
            rows.append(list(rgb) + list(rgb))
            names.append("input")
        choice = measured_layer(ctx, key)
        for layer in [choice.layer, *choice.others(LAYERS[key])]:
            cam = ac.GradCAM(model, layer, layout="nchw")(x, targets)
            campp = ac.GradCAMPlusPlus(model, layer, layout="nchw")(x, targets)
            pick = range(len(y))
            rows.append(
                [overlay(rgb[i], cam.maps[i, i]) for i in pick] + [overlay(rgb[i], campp.maps[i, i]) for i in pick]
            )
            short = layer.split(".", 1)[1] if key == "fcn" and "." in layer else layer
            names.append(f"{key} {short} ({cam.raw.shape[-1]}px)\npointing {choice.scores[layer]:.0%}")
    cols = ["Grad-CAM", "Grad-CAM", "Grad-CAM++", "Grad-CAM++"]
    file = "gradcam_vs_gradcampp_architectures.png"
    panel_grid(rows, path=ctx.path(file), col_titles=cols, row_titles=names)
    return [
        Figure(
            file,
            "segmentation",
            "Grad-CAM vs Grad-CAM++ across layers and architectures",
            "The true shape's logit summed over its ground-truth pixels (ac.Area(mask=..., channel=...)) "
            "for FCN-8s and U-Net, one row per layer (map size in brackets): first the layer measured "
            "best, then two conventional picks, each with Seg-Grad-CAM's pointing game on held-out images. "
            "Coarse layers blur the object or go blank; Grad-CAM++ weighs every positive gradient and covers "
            "more of it.",
        )
    ]
