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
(e) 8 box targets on one 96^3 volume through ``ac.SlidingWindow(roi 64^3, overlap 0.25)`` (8 patches)
    around a MONAI 3-D UNet (random weights) at ``model.model.1``: areacam's one stitched Grad-CAM call
    vs the bare loop of 8 forward + backward passes through MONAI's ``sliding_window_inference`` (the
    layer hooked in every patch, ``autograd.grad`` to the 8 activations), and MONAI's
    ``OcclusionSensitivity`` on the 8 box scores (see ``bench_window``'s docstring for what it does).
    Recorded in its own section of docs/performance.md.

    python scripts/bench_cam.py [--repeats 5] [--no-record] [--case a b c d e]
"""

from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import timm
import torch
import torchvision
from benchlib import machine, parse_record_args, record, timeit, timeit_interleaved
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


WINDOW_LAYER = "model.model.1"  # MONAI UNet: the skip connection's output, half the window's resolution


def window_unet() -> torch.nn.Module:
    """The MONAI 3-D UNet of case (e), random weights."""
    from monai.networks import nets

    torch.manual_seed(0)
    return nets.UNet(3, 1, 2, channels=(8, 16, 32, 64), strides=(2, 2, 2), num_res_units=1).eval()


def window_boxes(size: int = 96, side: int = 24) -> list[tuple[int, ...]]:
    """8 boxes ``(z0, y0, x0, z1, y1, x1)``, one in each octant of a ``size``-cube volume."""
    corners = [(z, y, x) for z in (8, size - side - 8) for y in (8, size - side - 8) for x in (8, size - side - 8)]
    return [(*c, *(v + side for v in c)) for c in corners]


class BoxScores(torch.nn.Module):
    """MONAI's inferer around ``model`` as a classifier of 8 "classes": the channel-1 sums of the 8 boxes,
    the only way MONAI's ``OcclusionSensitivity`` (which reads a ``(B, classes)`` output) takes a region."""

    def __init__(self, model: torch.nn.Module, regions: list[tuple[int, ...]]):
        super().__init__()
        self.model, self.regions = model, regions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from monai.inferers import sliding_window_inference

        out = sliding_window_inference(x, (64, 64, 64), 1, self.model, overlap=0.25, mode="constant")
        return torch.stack(
            [out[:, 1, b[0] : b[3], b[1] : b[4], b[2] : b[5]].flatten(1).sum(1) for b in self.regions], 1
        )


def bench_window(repeats: int) -> dict[str, float]:
    """Case (e). The bare loop runs, per target, MONAI's inferer with gradients and one ``autograd.grad`` to
    the layer's output in every patch; a reference stitch of its per-patch Grad-CAMs (constant weights)
    checks that areacam computed the same maps before anything is timed.

    MONAI's ``OcclusionSensitivity`` reads a classifier's ``(B, classes)`` output, so it takes the 8 region
    scores only through a wrapper (:class:`BoxScores`) that runs the inferer and sums each box; each
    occlusion is then a whole sliding-window inference (8 patch forwards). Its default (mask 16, overlap
    0.6) occludes at 15 positions per axis, 3375 inferences: it is timed here at mask 48 without overlap
    (8 occlusions, one value per octant), and the count of the default is stated beside it.
    """
    from monai.inferers import sliding_window_inference
    from monai.visualize import OcclusionSensitivity

    from areacam.core.explanation import upsample

    net = window_unet()
    window = ac.SlidingWindow(net, 64, overlap=0.25, mode="constant")
    x = torch.rand(1, 1, 96, 96, 96, generator=torch.Generator().manual_seed(0))
    regions = window_boxes()
    targets = [ac.Area(box=box, channel=1) for box in regions]
    ours = ac.GradCAM(window, WINDOW_LAYER, layout="nchw")
    layer = net.model[1]

    def bare_loop() -> list[list[torch.Tensor]]:
        grads = []
        for b in regions:
            acts: list[torch.Tensor] = []
            handle = layer.register_forward_hook(lambda m, i, o, acts=acts: acts.append(o))
            try:
                out = sliding_window_inference(x, (64, 64, 64), 1, net, overlap=0.25, mode="constant")
            finally:
                handle.remove()
            score = out[:, 1, b[0] : b[3], b[1] : b[4], b[2] : b[5]].sum()
            grads.append([[a.detach() for a in acts], list(torch.autograd.grad(score, acts))])
        return grads

    def reference() -> torch.Tensor:
        patches = [p for call in window.patches(x.shape) for p in call]
        maps = torch.zeros(len(regions), 96, 96, 96)
        count = torch.zeros(96, 96, 96)
        for k, (acts, grads) in enumerate(bare_loop()):
            for (_, where), a, g in zip(patches, acts, grads):
                cam = torch.relu((g.mean((2, 3, 4), keepdim=True) * a.detach()).sum(1, keepdim=True))
                maps[k][where] += upsample(cam.detach(), (64, 64, 64))[0, 0]
        for _, where in patches:
            count[where] += 1
        return maps / count

    expected = reference()
    got = ours(x, targets).raw[0]
    scale = float(expected.abs().max())
    assert float((got - expected).abs().max()) <= 1e-4 * scale, "areacam and the bare loop's stitch disagree"
    occlusion = OcclusionSensitivity(
        BoxScores(net, regions), mask_size=48, n_batch=1, verbose=False, mode=0.0, overlap=0.0, activate=False
    )
    with torch.no_grad():
        t_occlusion = timeit(lambda: occlusion(x), 1, warmup=0)
    # in turn, round by round: on the shared machine a burst of load would otherwise fall on one of the two
    timed = timeit_interleaved({"areacam": lambda: ours(x, targets), "bare loop": bare_loop}, repeats)
    return {**timed, "occlusion": t_occlusion}


def window_lines(e: dict[str, float], repeats: int) -> list[str]:
    """The recorded section of case (e)."""
    return [
        "## CAM through a sliding window: `python scripts/bench_cam.py --case e`",
        "",
        f"Measured on {machine()}; median of {repeats} runs, areacam and the bare loop in turn in each round "
        "(MONAI's occlusion: one run), all in one process.",
        "",
        "| case | areacam | peer | ratio |",
        "| --- | --- | --- | --- |",
        f"| (e) 8 box targets, 96^3 volume, `SlidingWindow(roi 64^3, overlap 0.25)` (8 patches), MONAI UNet, "
        f"`{WINDOW_LAYER}` | {e['areacam']:.3f} s | bare loop: 8 x (MONAI `sliding_window_inference` + "
        f"`autograd.grad`) {e['bare loop']:.3f} s | areacam / bare = **{e['areacam'] / e['bare loop']:.2f}** "
        f"(target <= 1.2) |",
        f"| (e) same | {e['areacam']:.3f} s | MONAI `OcclusionSensitivity` on the 8 box scores, mask 48, "
        f"no overlap (8 occlusions x 8 patches) {e['occlusion']:.3f} s | "
        f"**{e['occlusion'] / e['areacam']:.2f}x** (MONAI's default mask 16 / overlap 0.6 would run 3375 "
        f"occlusions, about {e['occlusion'] / 8 * 3375:.0f} s at this rate; not run) |",
    ]


def table_rows(case: str, r: dict[str, float]) -> list[str]:
    """The rows of one of cases (a)-(d) in the recorded table."""
    if case == "a":
        return [
            f"| (a) Grad-CAM, ResNet-50, batch 4, 224x224, `layer4` | {r['areacam']:.3f} s | pytorch-grad-cam "
            f"{r['pytorch-grad-cam']:.3f} s | **{r['pytorch-grad-cam'] / r['areacam']:.2f}x** |"
        ]
    if case == "d":
        return [
            f"| (d) Grad-CAM, ViT-B/16, batch 4, 224x224, `blocks.11.norm1` (tokens) | {r['areacam']:.3f} s | "
            f"pytorch-grad-cam with its ViT reshape_transform {r['pytorch-grad-cam']:.3f} s | "
            f"**{r['pytorch-grad-cam'] / r['areacam']:.2f}x** |"
        ]
    what = {
        "b": "(b) 16 box targets, U-Net (ResNet-18), 160x160, `encoder.layer4`",
        "c": "(c) 16 box targets, 3-D U-Net, 64x64x64, `bottleneck`",
    }[case]
    return [
        f"| {what} | {r['areacam']:.3f} s | 16 pytorch-grad-cam calls {r['pytorch-grad-cam']:.3f} s | "
        f"**{r['pytorch-grad-cam'] / r['areacam']:.2f}x** |",
        f"| ({case}) same | {r['areacam']:.3f} s | bare forward + 16 `autograd.grad` {r['bare loop']:.3f} s | "
        f"**{r['bare loop'] / r['areacam']:.2f}x** (areacam / bare = {r['areacam'] / r['bare loop']:.2f}) |",
    ]


CASES = {"a": bench_classifier, "b": bench_regions, "c": bench_volumes, "d": bench_vit}


def main() -> None:
    args = parse_record_args(__doc__, cases="abcde")
    if "e" in args.case:
        text = "\n".join(window_lines(bench_window(args.repeats), args.repeats))
        print(text)
        if not args.no_record:
            record("bench_cam_window", text)
    chosen = [c for c in "abcd" if c in args.case]
    if not chosen:
        return
    rows = [row for c in chosen for row in table_rows(c, CASES[c](args.repeats))]
    lines = [
        "## CAM: `python scripts/bench_cam.py`",
        "",
        f"Measured on {machine()}; median of {args.repeats} runs, all in one process.",
        "",
        "| case | areacam | peer | ratio (peer / areacam) |",
        "| --- | --- | --- | --- |",
        *rows,
    ]
    text = "\n".join(lines)
    print(text)
    if args.no_record:
        return
    if len(chosen) == 4:
        record("bench_cam", text)
    else:
        print("(the table of cases (a)-(d) is recorded only when all four run; not recorded)")


if __name__ == "__main__":
    main()
