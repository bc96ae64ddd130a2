"""Autoencoder figures: area Grad-CAM on VAE and VAE-GAN reconstructions."""

from __future__ import annotations

import torch

import areacam as ac

from ...viz import region_figure
from .common import Context, Figure, sample_per_class

__all__ = ["BOXES", "area_gradcam"]

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
    cam = ac.GradCAM(model, layer)(x, targets)
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
