"""Grad-CAM speed against pytorch-grad-cam and a bare autograd loop, measured in one run.

(a) Grad-CAM of a batch of 4 on torchvision ResNet-50 (random weights) at ``layer4``, 224x224.
(b) 16 box targets on one 160x160 image through an smp U-Net (ResNet-18 encoder) at
    ``encoder.layer4``: areacam's one call vs 16 pytorch-grad-cam calls with
    SemanticSegmentationTarget vs one forward + 16 ``autograd.grad`` calls to that layer.
(c) The same for 16 box targets on one 64^3 volume through the reference 3-D U-Net
    (``models.create("unet3d")``) at ``bottleneck`` (16^3): pytorch-grad-cam 1.5.7 handles 5-D
    activations (it upsamples with scipy's cubic-spline zoom; the check passes areacam's raw maps
    through that same scaling).
(d) Grad-CAM of a batch of 4 on timm ViT-B/16 (random weights) at ``blocks.11.norm1``, 224x224:
    areacam reads the (B, 197, 768) tokens itself; pytorch-grad-cam gets its ViT reshape_transform.

    python scripts/bench_cam.py [--repeats 5] [--no-record]
"""

from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import timm
import torch
import torchvision
from benchlib import machine, parse_record_args, record, timeit
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget

import areacam as ac
from areacam import models


def boxes(size: int, count: int = 16, side: int = 32) -> list[tuple[int, int, int, int]]:
    """A 4x4 grid of boxes over the image."""
    step = (size - side) // 3
    return [(r * step, c * step, r * step + side, c * step + side) for r in range(4) for c in range(4)][:count]


def bench_classifier(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.rand(4, 3, 224, 224)
    ours = ac.GradCAM(model, "layer4")
    theirs = PgcGradCAM(model=model, target_layers=[model.layer4])
    classes = [1, 2, 3, 4]
    expected = ours(x, ac.Class(classes)).maps[:, 0].numpy()
    got = theirs(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    assert np.abs(expected - got).max() < 1e-3, "the two disagree: the benchmark would compare different work"
    t_ours = timeit(lambda: ours(x, ac.Class(classes)), repeats)
    t_theirs = timeit(lambda: theirs(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes]), repeats)
    return {"areacam": t_ours, "pytorch-grad-cam": t_theirs}


def bench_regions(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=3).eval()
    x = torch.rand(1, 3, 160, 160)
    regions = boxes(160)
    targets = [ac.Area(box=box, channel=1) for box in regions]
    ours = ac.GradCAM(model, "encoder.layer4")
    theirs = PgcGradCAM(model=model, target_layers=[model.encoder.layer4])
    masks = []
    for top, left, bottom, right in regions:
        mask = np.zeros((160, 160), np.float32)
        mask[top:bottom, left:right] = 1
        masks.append(mask)

    def pgc_loop():
        return [theirs(input_tensor=x, targets=[SemanticSegmentationTarget(1, mask)]) for mask in masks]

    def bare_loop():
        captured = {}
        handle = model.encoder.layer4.register_forward_hook(lambda m, i, o: captured.setdefault("acts", o))
        try:
            out = model(x)
        finally:
            handle.remove()
        return [
            torch.autograd.grad(out[:, 1, top:bottom, left:right].sum(), captured["acts"], retain_graph=True)[0]
            for top, left, bottom, right in regions
        ]

    expected = ours(x, targets).maps[0].numpy()
    assert np.abs(expected - np.concatenate(pgc_loop())).max() < 1e-3, "areacam and pytorch-grad-cam disagree"
    return {
        "areacam": timeit(lambda: ours(x, targets), repeats),
        "pytorch-grad-cam": timeit(pgc_loop, repeats),
        "bare loop": timeit(bare_loop, repeats),
    }


def cube_boxes(size: int, count: int = 16, side: int = 16) -> list[tuple[int, ...]]:
    """``count`` boxes ``(z0, y0, x0, z1, y1, x1)`` on a 2x2x4 grid over a ``size``-cube volume."""
    step = (size - side) // 3
    corners = [(z * step * 3, y * step * 3, x * step) for z in range(2) for y in range(2) for x in range(4)]
    return [(*c, *(v + side for v in c)) for c in corners][:count]


def bench_volumes(repeats: int) -> dict[str, float]:
    """16 box targets on a 3-D U-Net at 64^3, Grad-CAM at the bottleneck (16^3)."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    torch.manual_seed(0)
    model = models.create("unet3d", num_classes=3, in_channels=1, width=8).eval()
    x = torch.rand(1, 1, 64, 64, 64)
    regions = cube_boxes(64)
    targets = [ac.Area(box=box, channel=1) for box in regions]
    ours = ac.GradCAM(model, "bottleneck")
    theirs = PgcGradCAM(model=model, target_layers=[model.bottleneck])
    masks = []
    for box in regions:
        mask = np.zeros((64, 64, 64), np.float32)
        mask[box[0] : box[3], box[1] : box[4], box[2] : box[5]] = 1
        masks.append(mask)

    def pgc_loop():
        return [theirs(input_tensor=x, targets=[SemanticSegmentationTarget(1, mask)]) for mask in masks]

    def bare_loop():
        captured = {}
        handle = model.bottleneck.register_forward_hook(lambda m, i, o: captured.setdefault("acts", o))
        try:
            out = model(x)
        finally:
            handle.remove()
        return [
            torch.autograd.grad(
                out[:, 1, b[0] : b[3], b[1] : b[4], b[2] : b[5]].sum(), captured["acts"], retain_graph=True
            )[0]
            for b in regions
        ]

    # pytorch-grad-cam upsamples volumes with scipy's cubic-spline zoom, areacam trilinearly: pass areacam's
    # raw maps through pytorch-grad-cam's own scaling (zoom, clip at 0, normalise) instead.
    raw = ours(x, targets).raw[0].numpy()
    expected = scale_cam_image(np.maximum(scale_cam_image(raw, (64, 64, 64)), 0))
    assert np.abs(expected - np.concatenate(pgc_loop())).max() < 1e-3, "areacam and pytorch-grad-cam disagree"
    return {
        "areacam": timeit(lambda: ours(x, targets), repeats),
        "pytorch-grad-cam": timeit(pgc_loop, repeats),
        "bare loop": timeit(bare_loop, repeats),
    }


def vit_reshape(tensor: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's ViT reshape_transform: drop the class token, (B, 196, C) -> (B, C, 14, 14)."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), 14, 14, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def bench_vit(repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    x = torch.rand(4, 3, 224, 224)
    ours = ac.GradCAM(model, "blocks.11.norm1")
    theirs = PgcGradCAM(model=model, target_layers=[model.blocks[11].norm1], reshape_transform=vit_reshape)
    classes = [1, 2, 3, 4]
    expected = ours(x, ac.Class(classes))
    got = theirs(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    assert expected.layout == "tokens(prefix=1, grid=14x14)"
    assert np.abs(expected.maps[:, 0].numpy() - got).max() < 1e-3, "the two disagree"
    t_ours = timeit(lambda: ours(x, ac.Class(classes)), repeats)
    t_theirs = timeit(lambda: theirs(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes]), repeats)
    return {"areacam": t_ours, "pytorch-grad-cam": t_theirs}


def main() -> None:
    args = parse_record_args(__doc__)
    a = bench_classifier(args.repeats)
    b = bench_regions(args.repeats)
    c = bench_volumes(args.repeats)
    d = bench_vit(args.repeats)
    lines = [
        "## CAM: `python scripts/bench_cam.py`",
        "",
        f"Measured on {machine()}; median of {args.repeats} runs, all in one process.",
        "",
        "| case | areacam | peer | ratio (peer / areacam) |",
        "| --- | --- | --- | --- |",
        f"| (a) Grad-CAM, ResNet-50, batch 4, 224x224, `layer4` | {a['areacam']:.3f} s | pytorch-grad-cam "
        f"{a['pytorch-grad-cam']:.3f} s | **{a['pytorch-grad-cam'] / a['areacam']:.2f}x** |",
        f"| (b) 16 box targets, U-Net (ResNet-18), 160x160, `encoder.layer4` | {b['areacam']:.3f} s | "
        f"16 pytorch-grad-cam calls {b['pytorch-grad-cam']:.3f} s | **{b['pytorch-grad-cam'] / b['areacam']:.2f}x** |",
        f"| (b) same | {b['areacam']:.3f} s | bare forward + 16 `autograd.grad` {b['bare loop']:.3f} s | "
        f"**{b['bare loop'] / b['areacam']:.2f}x** (areacam / bare = {b['areacam'] / b['bare loop']:.2f}) |",
        f"| (c) 16 box targets, 3-D U-Net, 64x64x64, `bottleneck` | {c['areacam']:.3f} s | "
        f"16 pytorch-grad-cam calls {c['pytorch-grad-cam']:.3f} s | **{c['pytorch-grad-cam'] / c['areacam']:.2f}x** |",
        f"| (c) same | {c['areacam']:.3f} s | bare forward + 16 `autograd.grad` {c['bare loop']:.3f} s | "
        f"**{c['bare loop'] / c['areacam']:.2f}x** (areacam / bare = {c['areacam'] / c['bare loop']:.2f}) |",
        f"| (d) Grad-CAM, ViT-B/16, batch 4, 224x224, `blocks.11.norm1` (tokens) | {d['areacam']:.3f} s | "
        f"pytorch-grad-cam with its ViT reshape_transform {d['pytorch-grad-cam']:.3f} s | "
        f"**{d['pytorch-grad-cam'] / d['areacam']:.2f}x** |",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("bench_cam", text)


if __name__ == "__main__":
    main()
