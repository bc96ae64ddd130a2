"""Classifier analysis figures: saliency per class, Grad-CAM vs Grad-CAM++ by layer, maps by epoch."""

from __future__ import annotations

import torch

import areacam as ac
from areacam.app.demo.common import Context, Figure, sample_per_class
from areacam.app.demo.layer_choice import measured_layer
from areacam.viz.images import gradient_image, overlay, panel_grid, to_rgb

__all__ = ["explanations_by_epoch", "gradcam_by_layer", "saliency_per_class"]


def saliency_per_class(ctx: Context) -> list[Figure]:
    """Digits classifier: one test image per class, its saliency and guided-backprop maps for that class."""
    model = ctx.model("digits_classifier")
    data = ctx.data("digits_classifier")
    idx = sample_per_class(data["y_test"], 10)
    x, y = data["x_test"][idx], data["y_test"][idx]
    with torch.no_grad():
        pred = model(x).argmax(1)
    targets = ac.Class(y.tolist())
    sal = ac.Saliency(model)(x, targets)
    guided = ac.GuidedBackprop(model)(x, targets)
    rgb = to_rgb(x)
    rows = [
        list(rgb),
        [overlay(img, m[0], colormap="hot", alpha=0.7) for img, m in zip(rgb, sal.maps)],
        [gradient_image(g[0]) for g in guided.raw],
    ]
    cols = [f"class {int(c)} (pred {int(p)})" for c, p in zip(y, pred)]
    panel_grid(
        rows,
        path=ctx.path("saliency_per_class.png"),
        col_titles=cols,
        row_titles=["input", "saliency", "guided backprop"],
    )
    return [
        Figure(
            "saliency_per_class.png",
            "classifier",
            "Saliency maps per class",
            "Digits classifier: one test digit per class; the input gradient (saliency) and guided "
            "backprop of that class's logit. The strokes that make the digit light up.",
        )
    ]


def gradcam_by_layer(ctx: Context) -> list[Figure]:
    """Shapes classifier: Grad-CAM and Grad-CAM++ of the true class at each block's last ReLU.

    Each row is labelled with Grad-CAM's pointing game at that layer, measured on held-out images
    with their exact shape masks, and the share of blank maps (constant after the ReLU).
    """
    from areacam.data import SHAPE_CLASSES

    model = ctx.model("shapes_classifier")
    data = ctx.data("shapes_classifier")
    idx = sample_per_class(data["y_test"], 3)
    x, y = data["x_test"][idx], data["y_test"][idx]
    choice = measured_layer(ctx, "shapes_classifier")
    layers = [f"features.block{i}.relu" for i in (2, 3, 4, 5)]
    rgb = to_rgb(x)
    rows, names = [list(rgb) + list(rgb)], ["input"]
    for layer in layers:
        cam = ac.GradCAM(model, layer, layout="nchw")(x, ac.Class(y.tolist()))
        campp = ac.GradCAMPlusPlus(model, layer, layout="nchw")(x, ac.Class(y.tolist()))
        rows.append(
            [overlay(i, m[0]) for i, m in zip(rgb, cam.maps)] + [overlay(i, m[0]) for i, m in zip(rgb, campp.maps)]
        )
        size = f"{cam.raw.shape[-1]}x{cam.raw.shape[-2]}"
        names.append(
            f"{layer.split('.')[1]} ({size})\npointing {choice.scores[layer]:.0%}"
            + ("  <- best" if layer == choice.layer else "")
        )
    n = len(y)
    cols = [f"Grad-CAM: {SHAPE_CLASSES[int(c)]}" for c in y] + [f"Grad-CAM++: {SHAPE_CLASSES[int(c)]}" for c in y]
    panel_grid(rows, path=ctx.path("gradcam_vs_gradcampp_layers.png"), col_titles=cols, row_titles=names)
    measured = ", ".join(
        f"{layer.split('.')[1]} {choice.scores[layer]:.0%}"
        + (f" ({choice.degenerate[layer]:.0%} blank)" if choice.degenerate[layer] else "")
        for layer in layers
    )
    return [
        Figure(
            "gradcam_vs_gradcampp_layers.png",
            "classifier",
            "Grad-CAM vs Grad-CAM++ across layers",
            f"Shapes classifier, {n} test images, true class. Left: Grad-CAM; right: Grad-CAM++; one row "
            f"per block (deeper = coarser). Measured on {choice.count} held-out images with exact shape "
            f"masks, Grad-CAM's maximum lies on the shape for: {measured} (pointing game; chance is the "
            f"shape's share of the image). A blank panel is a map that is zero everywhere after the ReLU: "
            f"no channel has a positive weight for that class at that layer. {choice.layer} localises "
            "best: the method table of 'Which method to trust' reads it.",
        )
    ]


def explanations_by_epoch(ctx: Context) -> list[Figure]:
    """Digits classifier: Grad-CAM of the true class with the checkpoint of every epoch."""
    checkpoints = ctx.epochs("digits_classifier")
    data = ctx.data("digits_classifier")
    history = {h["epoch"]: h for h in ctx.metrics("digits_classifier")["history"]}
    idx = sample_per_class(data["y_test"], 4)
    x, y = data["x_test"][idx], data["y_test"][idx]
    rgb = to_rgb(x)
    columns = [list(rgb)]
    titles = ["input"]
    for epoch, model in checkpoints:
        expl = ac.GradCAM(model, "features.block3.relu", layout="nchw")(x, ac.Class(y.tolist()))
        columns.append([overlay(i, m[0]) for i, m in zip(rgb, expl.maps)])
        acc = history.get(epoch, {}).get("test_accuracy")
        titles.append(f"epoch {epoch}" + (f" (acc {acc:.0%})" if acc is not None else ""))
    rows = [list(r) for r in zip(*columns)]
    panel_grid(
        rows, path=ctx.path("explanations_by_epoch.png"), col_titles=titles, row_titles=[f"digit {int(c)}" for c in y]
    )
    return [
        Figure(
            "explanations_by_epoch.png",
            "classifier",
            "Explanations across training epochs",
            "Digits classifier, Grad-CAM (block3) of the true class with the checkpoint saved after "
            "each epoch: the map settles on the digit's strokes as test accuracy rises.",
        )
    ]
