"""Volume and signal figures: why a 3-D U-Net segments an object, where a 1-D autoencoder fails."""

from __future__ import annotations

import torch

import areacam as ac
from areacam.app.demo.common import Context, Figure
from areacam.data import VOLUME_CLASSES

__all__ = ["signal_anomaly", "volume_segmentation"]

VOLUME_LAYER = "dec2"
SIGNAL_LAYER = "decoder.deconv2"


def _boxes(objects: torch.Tensor, margin: int = 2) -> torch.Tensor:
    """``(B, D, H, W)`` bool: each object's bounding box grown by ``margin`` voxels (clipped)."""
    boxes = torch.zeros_like(objects)
    for i, obj in enumerate(objects):
        where = obj.nonzero()
        low = (where.amin(0) - margin).clamp(min=0).tolist()
        high = (where.amax(0) + margin + 1).tolist()
        boxes[i, low[0] : high[0], low[1] : high[1], low[2] : high[2]] = True
    return boxes


def _inside(maps: torch.Tensor, regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: whether the map's maximum lies in the region, and the share of the map's sum there."""
    flat, inside = maps.flatten(1), regions.flatten(1)
    hits = inside.gather(1, flat.argmax(1, keepdim=True))[:, 0].float()
    mass = (flat * inside).sum(1) / flat.sum(1).clamp_min(1e-12)
    return hits, mass


def volume_segmentation(ctx: Context) -> list[Figure]:
    """Grad-CAM and saliency of each object's predicted voxels, as orthogonal slices through the object."""
    model = ctx.model("unet3d")
    data = ctx.data("unet3d")
    count = min(8, len(data["x_test"]))
    x, labels, masks = data["x_test"][:count], data["y_test"][:count], data["m_test"][:count]
    boxes = _boxes(masks > 0)
    # "Why is this region segmented": the voxels predicted as each class inside each object's box.
    targets = [ac.Segment(c + 1, mask=boxes) for c in range(len(VOLUME_CLASSES))]
    cam = ac.GradCAM(model, VOLUME_LAYER, layout="nchw")(x, targets)
    saliency = ac.Saliency(model)(x, targets)
    rows = torch.arange(count)
    column = labels  # the object's true class
    cam_maps, sal_maps = cam.maps[rows, column], saliency.maps[rows, column]
    informative = ~cam.degenerate[rows, column]
    hits, mass = _inside(cam_maps, boxes)
    fraction = boxes.flatten(1).float().mean(1)
    shown = int(informative.nonzero()[0]) if informative.any() else 0
    cls = int(labels[shown])
    file = "volume_segmentation.png"
    ac.volume_figure(
        x[shown],
        torch.stack([cam_maps[shown], sal_maps[shown]]),
        boxes[shown],
        titles=[f"Grad-CAM {VOLUME_LAYER}", "saliency"],
        path=ctx.path(file),
    )
    iou = ctx.metrics("unet3d")["final"]["class_iou"]
    used = int(informative.sum())
    share = float(mass[informative].mean()) if used else 0.0
    size = float(fraction[informative].mean()) if used else 0.0
    caption = (
        f"3-D U-Net on generated volumes (test IoU background / sphere / cube {iou[0]:.2f} / {iou[1]:.2f} / "
        f"{iou[2]:.2f}). ac.Segment({cls + 1}) ({VOLUME_CLASSES[cls]}): the logits of the voxels predicted as "
        f"the object's class inside its box (white outline), shown as axial / coronal / sagittal slices "
        f"through the box's centre. Over the {used} of {count} test volumes with such voxels, on average "
        f"{share * 100:.0f}% of the Grad-CAM map lies in the box, which covers {size * 100:.0f}% of the volume; "
        f"the map's maximum lies in the box in {int(hits[informative].sum())} of {used}."
    )
    return [Figure(file, "segmentation", "Why is this region of the volume segmented", caption)]


def signal_anomaly(ctx: Context) -> list[Figure]:
    """Saliency, LayerCAM and Grad-CAM of the reconstruction error over each signal's injected anomaly window."""
    model = ctx.model("signal_ae")
    data = ctx.data("signal_ae")
    x, windows = data["x_test"], data["a_test"]
    target = ac.ReconstructionError(mask=windows)  # one window per signal
    methods = {
        "saliency": ac.Saliency(model),
        f"LayerCAM {SIGNAL_LAYER}": ac.LayerCAM(model, SIGNAL_LAYER),
        f"Grad-CAM {SIGNAL_LAYER}": ac.GradCAM(model, SIGNAL_LAYER),
    }
    maps, hits, mass = {}, {}, {}
    for name, explainer in methods.items():
        maps[name] = explainer(x, target).maps[:, 0]
        found, share = _inside(maps[name], windows)
        hits[name], mass[name] = float(found.mean()), float(share.mean())
    fraction = float(windows.float().mean())
    shown = 0
    start = int(windows[shown].float().argmax())
    stop = start + int(windows[shown].sum())
    with torch.no_grad():
        recon = model.eval()(x[shown : shown + 1])[0][0]
    file = "signal_anomaly.png"
    names = list(methods)
    ac.signal_figure(
        x[shown],
        torch.stack([maps[name][shown] for name in names]),
        (start, stop),
        recon=recon,
        titles=[f"{name}: ReconstructionError(box=({start}, {stop}))" for name in names],
        path=ctx.path(file),
    )
    hit_text = "; ".join(f"{name} {hits[name] * 100:.0f}% (map share {mass[name] * 100:.0f}%)" for name in names)
    caption = (
        f"1-D convolutional autoencoder trained on clean generated signals; each test signal has one injected "
        f"anomaly (shaded). The target is the squared reconstruction error over the anomaly window "
        f"(ac.ReconstructionError(mask=...)). Over {len(x)} test signals, the map's maximum lies in the window "
        f"for: {hit_text}; a random point: {fraction * 100:.0f}%.{_compare(hits, names[1], names[2])} Right: the "
        f"signal, its reconstruction and the squared error."
    )
    return [Figure(file, "autoencoder", "Where does the signal's reconstruction fail", caption)]


def _compare(hits: dict[str, float], layercam: str, gradcam: str) -> str:
    """A sentence on LayerCAM vs Grad-CAM, only as the measured hit rates say."""
    if hits[layercam] > hits[gradcam] + 0.1:
        return (
            " Grad-CAM averages each channel's gradient over the whole signal and loses the window; "
            "LayerCAM's element-wise weights keep it."
        )
    return ""
