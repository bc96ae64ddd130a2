"""Autoencoder figures: area Grad-CAM on VAE and VAE-GAN reconstructions; seven methods on a VAE's error."""

from __future__ import annotations

import torch

import areacam as ac

from ...viz import draw_box, overlay, panel_grid, region_figure, to_rgb
from .common import Context, Figure, sample_per_class

__all__ = ["BOXES", "area_gradcam", "method_comparison"]

# One box per sample row (top, left, bottom, right) on the 32x32 digits: upper, centre, lower part.
BOXES = [(4, 8, 14, 24), (10, 10, 22, 22), (18, 8, 28, 24), (4, 4, 28, 16)]

TITLES = {"vae": "VAE", "vaegan": "VAE-GAN"}


def area_gradcam(ctx: Context, key: str) -> list[Figure]:
    """Rows of input-with-box | reconstruction | guided backprop | area Grad-CAM for a box on the output."""
    model = ctx.model(key)
    data = ctx.data(key)
    idx = sample_per_class(data["y_test"], len(BOXES))
    x = data["x_test"][idx]
    targets = [ac.Area(box=box) for box in BOXES]
    layer = "encoder.relu2"
    cam = ac.GradCAM(model, layer, layout="nchw")(x, targets)
    guided = ac.GuidedBackprop(model)(x, targets)
    with torch.no_grad():
        recon = model.eval()(x)[0]
    rows = torch.arange(len(BOXES))  # row i explains box i on sample i
    file = f"area_gradcam_{key}.png"
    region_figure(x, recon.clamp(0, 1), BOXES, guided.raw[rows, rows], cam.maps[rows, rows], path=ctx.path(file))
    name = TITLES[key]
    return [Figure(file, "autoencoder", f"Area Grad-CAM on {name} reconstructions",
                   f"{name} on digits. Each row explains the sum of the reconstruction inside the red box "
                   f"(ac.Area(box=...)): guided backprop at the input, Grad-CAM at {layer}. The evidence "
                   "sits in and around the box: the decoder rebuilds a region from the strokes near it.")]


METHOD_BOX = (8, 8, 24, 24)


def method_comparison(ctx: Context) -> list[Figure]:
    """VAE reconstruction error in a box, explained by seven methods side by side, one digit per row."""
    model = ctx.model("vae")
    data = ctx.data("vae")
    x = data["x_test"][sample_per_class(data["y_test"], 3)]
    target = ac.ReconstructionError(box=METHOD_BOX)
    layer = "encoder.relu2"
    methods = [
        ("Grad-CAM", ac.GradCAM(model, layer)),
        ("XGrad-CAM", ac.XGradCAM(model, layer)),
        ("Score-CAM", ac.ScoreCAM(model, layer)),
        ("Ablation-CAM", ac.AblationCAM(model, layer)),
        ("Eigen-CAM", ac.EigenCAM(model, layer)),
        ("Integrated Gradients", ac.IntegratedGradients(model, steps=16 if ctx.quick else 50, batch_size=64)),
        ("Occlusion", ac.Occlusion(model, 4, 4 if ctx.quick else 2)),
    ]
    maps = [explainer(x, target).maps[:, 0] for _, explainer in methods]
    with torch.no_grad():
        recon = model.eval()(x)[0]
    rgb, rec = to_rgb(x), to_rgb(recon.clamp(0, 1))
    rows = [[draw_box(rgb[i], METHOD_BOX), draw_box(rec[i], METHOD_BOX), *(overlay(rgb[i], m[i]) for m in maps)]
            for i in range(len(rgb))]
    file = "methods_vae_recon_error.png"
    panel_grid(rows, path=ctx.path(file), col_titles=["input + box", "reconstruction", *(n for n, _ in methods)])
    return [Figure(file, "autoencoder", "Seven methods on a VAE's reconstruction error",
                   "VAE on digits. Each row explains the squared error of the reconstruction inside the red box "
                   f"(ac.ReconstructionError(box=...)), CAMs at {layer}. The gradient CAMs and Integrated "
                   "Gradients read the error's gradient; Score-CAM and Ablation-CAM only forward passes (no "
                   "saturated sigmoid gradients); Occlusion the error's change when a 4x4 patch is blacked out; "
                   "Eigen-CAM ignores the target (the layer's main component), the reference the others differ from.")]
