"""Where is the anomaly? Anomaly maps of an autoencoder trained on normal textures, scored over a set.

:func:`anomaly_maps` is every row of the anomaly benchmark (``scripts/anomaly_table.py``, the table in
docs/quality.md) in a few lines of areacam each; :func:`pick_layers` chooses each CAM's layer by
relevance mass on a validation set. :func:`anomaly_panel` is the demo's figure: image, truth, squared
reconstruction error and the explanation with the best AUPRO on the demo's test textures.

Every map is the method's unnormalised output at the input's size: an explanation's ``maps`` are
min-max normalised per image, which would erase the differences between images that pooled pixel
AUROC and image AUROC measure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import areacam as ac
from areacam.app.demo.common import Context, Figure
from areacam.viz.images import overlay, panel_grid, to_rgb

__all__ = ["ENCODER", "LAYERS", "anomaly_maps", "anomaly_panel", "pick_layers", "upsampled"]

ENCODER = ("encoder.relu1", "encoder.relu2", "encoder.relu3")
LAYERS = (*ENCODER, "decoder.relu1", "decoder.relu2")
BASELINE, RANDOM = "squared reconstruction error (baseline)", "random map"


def upsampled(raw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, h, w)`` raw CAMs at the input's size, unnormalised (bilinear, as ``Explanation.maps``)."""
    return F.interpolate(raw[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def latent_sum(out: object) -> torch.Tensor:
    return out[1].sum(1)  # type: ignore[index]  # (recon, mu, ...): the zoo's autoencoders


def latent_abs_sum(out: object) -> torch.Tensor:
    return out[1].abs().sum(1)  # type: ignore[index]  # (recon, mu, ...): the zoo's autoencoders


def anomaly_maps(net: nn.Module, x: torch.Tensor, layer: dict[str, str], steps: int) -> dict[str, torch.Tensor]:
    """``{row: (N, H, W)}``: every method's anomaly map of ``x``, higher = more abnormal.

    ``layer`` gives the CAM layers (``"latent"``, ``"gradcam"``, ``"layercam"``: see :func:`pick_layers`);
    ``steps`` Integrated Gradients' steps.
    """
    size = (x.shape[-2], x.shape[-1])
    with torch.no_grad():
        recon = net(x)[0]
    rows = {BASELINE: ((recon - x) ** 2).sum(1)}
    rows[RANDOM] = torch.rand(x.shape[0], *size, generator=torch.Generator().manual_seed(0))
    targets: list[ac.Target] = [ac.Score(latent_sum, pure=True), ac.Score(latent_abs_sum, pure=True)]
    dim: int = getattr(net, "latent_dim")  # the zoo's autoencoders name their latent size  # noqa: B009
    targets += [ac.Latent(i) for i in range(dim)]
    cam = ac.GradCAM(net, layer["latent"], layout="nchw")(x, targets)
    rows["Liu et al.: Grad-CAM of sum(mu)"] = upsampled(cam.raw[:, 0], size)
    rows["Liu et al.: Grad-CAM of sum(|mu|)"] = upsampled(cam.raw[:, 1], size)
    rows["Liu et al.: mean of per-dim Grad-CAMs"] = upsampled(cam.raw[:, 2:].mean(1), size)
    error = ac.ReconstructionError()
    rows["Grad-CAM of ReconstructionError"] = upsampled(
        ac.GradCAM(net, layer["gradcam"], layout="nchw")(x, error).raw[:, 0], size
    )
    rows["LayerCAM of ReconstructionError"] = upsampled(
        ac.LayerCAM(net, layer["layercam"], layout="nchw")(x, error).raw[:, 0], size
    )
    rows["Saliency of ReconstructionError"] = ac.Saliency(net)(x, error).raw[:, 0].abs().amax(1)
    ig = ac.IntegratedGradients(net, steps=steps)(x, error)
    rows["Integrated Gradients of ReconstructionError"] = ig.raw[:, 0].abs().sum(1)
    return rows


def _nchw(method: Callable[..., ac.CAM]) -> Callable[[nn.Module, str], ac.CAM]:
    """The explainer factory for ``rank_layers``: these models' layers are channels-first."""
    return lambda model, layer: method(model, layer, layout="nchw")


def pick_layers(net: nn.Module, x: torch.Tensor, masks: torch.Tensor) -> dict[str, str]:
    """Each CAM's layer, ranked by relevance mass on the abnormal images of ``x`` (a validation set)."""
    keep = masks.flatten(1).any(1)
    x, masks = x[keep], masks[keep]
    latent = ac.Score(latent_sum, pure=True)
    best: dict[str, str] = {}
    for key, method, target, candidates in (
        ("latent", ac.GradCAM, latent, ENCODER),
        ("gradcam", ac.GradCAM, ac.ReconstructionError(), LAYERS),
        ("layercam", ac.LayerCAM, ac.ReconstructionError(), LAYERS),
    ):
        ranking = ac.metrics.rank_layers(
            net, x, target, method=_nchw(method), metric="relevance_mass", masks=masks, layers=candidates
        )
        best[key] = ranking.layers[0]
    return best


def anomaly_panel(ctx: Context) -> list[Figure]:
    """Rows of abnormal test textures: image | truth | squared reconstruction error | best explanation."""
    net = ctx.model("texture_ae")
    data = ctx.data("texture_ae")
    x, masks = data["x_test"], data["m_test"]
    half = len(x) // 2  # the first half picks the layers, the second is scored and shown
    layers = pick_layers(net, x[:half], masks[:half])
    x, masks = x[half:], masks[half:]
    maps = anomaly_maps(net, x, layers, steps=4 if ctx.quick else 8)
    aupro = {row: ac.metrics.aupro(m, masks) for row, m in maps.items()}
    explainers = [row for row in maps if row not in (BASELINE, RANDOM)]
    best = max(explainers, key=lambda row: aupro[row])
    shown = masks.flatten(1).any(1).nonzero()[:4, 0]
    rgb = to_rgb(x[shown])
    truth = to_rgb(masks[shown].float()[:, None])
    rows = [
        [rgb[i], truth[i], heatmap(rgb[i], maps[BASELINE][j]), heatmap(rgb[i], maps[best][j])]
        for i, j in enumerate(shown.tolist())
    ]
    error, region = maps[BASELINE][shown], masks[shown].bool()
    higher = sum(bool(e[r].mean() > e[~r].mean()) for e, r in zip(error, region))
    file = "anomaly_textures.png"
    short = best.replace(" of ReconstructionError", "").replace("Liu et al.: ", "")
    panel_grid(rows, col_titles=["image", "truth", "reconstruction error", short], path=ctx.path(file))
    wins = aupro[BASELINE] >= aupro[best]
    verdict = (
        "The plain reconstruction error localises better than every explanation here."
        if wins
        else f"{best} localises better than the plain reconstruction error here."
    )
    caption = (
        f"Autoencoder trained on normal generated textures only (ac.data.anomalies); {len(x)} test textures, "
        f"{int(masks.flatten(1).any(1).sum())} with an anomaly. AUPRO (FPR up to 0.3; a random map "
        f"{aupro[RANDOM]:.2f}): squared reconstruction error {aupro[BASELINE]:.2f}, the best of "
        f"{len(explainers)} explanations ({best}, shown) {aupro[best]:.2f}. {verdict} The maps are drawn "
        "alone (jet, red = most abnormal), each scaled to its own range: blended over a texture, its dark "
        f"patches read as low values. In {higher} of the {len(shown)} rows shown the mean reconstruction error is "
        "higher inside the anomaly than outside it; in the others the autoencoder reconstructs the anomalous "
        "patch better than the texture around it. docs/quality.md has the full table on larger models."
    )
    return [Figure(file, "autoencoder", "Where is the anomaly? Reconstruction error against explanations", caption)]


def heatmap(rgb: np.ndarray, m: torch.Tensor) -> np.ndarray:
    """``m`` as a jet heatmap alone (no texture underneath), scaled to its own range."""
    return overlay(rgb, _unit(m), alpha=1.0)


def _unit(m: torch.Tensor) -> torch.Tensor:
    """A map scaled to ``[0, 1]`` for display."""
    low, high = m.min(), m.max()
    return (m - low) / (high - low) if high > low else torch.zeros_like(m)
