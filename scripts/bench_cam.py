"""Grad-CAM speed against pytorch-grad-cam and a bare autograd loop, measured in one run.

(a) Grad-CAM of a batch of 4 on torchvision ResNet-50 (random weights) at ``layer4``, 224x224.
(b) 16 box targets on one 160x160 image through an smp U-Net (ResNet-18 encoder) at
    ``encoder.layer4``: areacam's one call vs 16 pytorch-grad-cam calls with
    SemanticSegmentationTarget vs one forward + 16 ``autograd.grad`` calls to that layer.

    python scripts/bench_cam.py [--repeats 5] [--no-record]
"""

from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torchvision
from benchlib import machine, parse_record_args, record, timeit
from pytorch_grad_cam import GradCAM as PgcGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, SemanticSegmentationTarget

import areacam as ac


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


def main() -> None:
    args = parse_record_args(__doc__)
    a = bench_classifier(args.repeats)
    b = bench_regions(args.repeats)
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
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("bench_cam", text)


if __name__ == "__main__":
    main()
