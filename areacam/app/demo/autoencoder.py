"""Autoencoder figures: area Grad-CAM on VAE and VAE-GAN reconstructions; seven methods on a VAE's error."""

from __future__ import annotations

import torch

import areacam as ac
from areacam import metrics
from areacam.app.demo.common import Context, Figure, sample_per_class
from areacam.app.demo.layer_choice import measured_layer
from areacam.app.demo.settings import BOXES
from areacam.viz.images import draw_box, overlay, panel_grid, region_figure, to_rgb

__all__ = ["area_gradcam", "method_comparison"]


# The VAE explorer's layer: 32 channels on an 8x8 grid (a small page, an unambiguous layout).
EXPLORER_LAYER = "encoder.relu2"

TITLES = {"vae": "VAE", "vaegan": "VAE-GAN"}


def area_gradcam(ctx: Context, key: str) -> list[Figure]:
    """Rows of input-with-box | reconstruction | guided backprop | area Grad-CAM for a box on the output."""
    model = ctx.model(key)
    data = ctx.data(key)
    idx = sample_per_class(data["y_test"], len(BOXES))
    x = data["x_test"][idx]
    targets = [ac.Area(box=box) for box in BOXES]
    choice = measured_layer(ctx, key)
    layer = choice.layer
    cam = ac.GradCAM(model, layer, layout="nchw")(x, targets)
    guided = ac.GuidedBackprop(model)(x, targets)
    # Row i explains box i: the share of each map's mass inside its own box, beside the box's share of
    # the image (what a map spread at random would put there).
    boxes = metrics.boxes_to_masks([list(BOXES)] * len(x), x.shape[-2:])
    rows_idx = torch.arange(len(BOXES))
    mass_cam = metrics.relevance_mass(cam.maps, boxes)[rows_idx, rows_idx]
    mass_guided = metrics.relevance_mass(guided.maps, boxes)[rows_idx, rows_idx]
    share = boxes.flatten(2).float().mean(2)[rows_idx, rows_idx]
    with torch.no_grad():
        recon = model.eval()(x)[0]
    rows = torch.arange(len(BOXES))  # row i explains box i on sample i
    file = f"area_gradcam_{key}.png"
    region_figure(x, recon.clamp(0, 1), BOXES, guided.raw[rows, rows], cam.maps[rows, rows], path=ctx.path(file))
    name = TITLES[key]
    ratio = float(mass_cam.mean() / share.mean())
    if ratio >= 1.5:
        verdict = "Grad-CAM concentrates its evidence in and around the box."
    elif ratio > 1.1:
        verdict = "Grad-CAM leans only slightly towards the box: most of its evidence lies elsewhere."
    else:
        verdict = (
            "Grad-CAM's evidence is not concentrated in the box: the decoder rebuilds a region from "
            "strokes anywhere in the image (the latent code is global)."
        )
    link = None
    if key == "vae":  # the explorer reads a layer with more channels than the measured one: C=32 at 8x8
        link = f"explorers/{key}.html"
        ac.explorer(
            model,
            x[:1],
            EXPLORER_LAYER,
            path=ctx.out / link,
            show="image",
            class_names=["intensity"],
            title=f"areacam explorer: {name} reconstruction at {EXPLORER_LAYER}",
        )
    return [
        Figure(
            file,
            "autoencoder",
            f"Area Grad-CAM on {name} reconstructions",
            f"{name} on digits. Each row explains the sum of the reconstruction inside the red box "
            f"(ac.Area(box=...)): guided backprop at the input, Grad-CAM at {layer}, the most faithful "
            f"candidate layer (deletion AUC {choice.scores[layer]:.2f} on {choice.count} held-out images, "
            f"lower is better). Share of each map's mass inside its box, "
            f"rows 1-{len(BOXES)}: Grad-CAM {', '.join(f'{v:.0%}' for v in mass_cam)}, guided backprop "
            f"{', '.join(f'{v:.0%}' for v in mass_guided)}; a map spread at random would put "
            f"{', '.join(f'{v:.0%}' for v in share)} there (the box's share of the image). {verdict}",
            link=link,
        )
    ]


METHOD_BOX = (8, 8, 24, 24)


def method_comparison(ctx: Context) -> list[Figure]:
    """VAE reconstruction error in a box, explained by seven methods side by side, one digit per row."""
    model = ctx.model("vae")
    data = ctx.data("vae")
    x = data["x_test"][sample_per_class(data["y_test"], 3)]
    target = ac.ReconstructionError(box=METHOD_BOX)
    layer = measured_layer(ctx, "vae").layer
    methods = [
        ("Grad-CAM", ac.GradCAM(model, layer, layout="nchw")),
        ("XGrad-CAM", ac.XGradCAM(model, layer, layout="nchw")),
        ("Score-CAM", ac.ScoreCAM(model, layer, layout="nchw")),
        ("Ablation-CAM", ac.AblationCAM(model, layer, layout="nchw")),
        ("Eigen-CAM", ac.EigenCAM(model, layer, layout="nchw")),
        ("Integrated Gradients", ac.IntegratedGradients(model, steps=16 if ctx.quick else 50, batch_size=64)),
        ("Occlusion", ac.Occlusion(model, 4, 4 if ctx.quick else 2)),
    ]
    maps = [explainer(x, target).maps[:, 0] for _, explainer in methods]
    with torch.no_grad():
        recon = model.eval()(x)[0]
    rgb, rec = to_rgb(x), to_rgb(recon.clamp(0, 1))
    rows = [
        [draw_box(rgb[i], METHOD_BOX), draw_box(rec[i], METHOD_BOX), *(overlay(rgb[i], m[i]) for m in maps)]
        for i in range(len(rgb))
    ]
    file = "methods_vae_recon_error.png"
    panel_grid(rows, path=ctx.path(file), col_titles=["input + box", "reconstruction", *(n for n, _ in methods)])
    return [
        Figure(
            file,
            "autoencoder",
            "Seven methods on a VAE's reconstruction error",
            "VAE on digits. Each row explains the squared error of the reconstruction inside the red box "
            f"(ac.ReconstructionError(box=...)), CAMs at {layer}. The gradient CAMs and Integrated "
            "Gradients read the error's gradient; Score-CAM and Ablation-CAM only forward passes (no "
            "saturated sigmoid gradients); Occlusion the error's change when a 4x4 patch is blacked out; "
            "Eigen-CAM ignores the target (the layer's main component), the reference the others differ from.",
        )
    ]
