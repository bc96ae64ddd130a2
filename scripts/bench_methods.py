"""Score-CAM, Ablation-CAM, Integrated Gradients and Occlusion: 16 box targets on one image, one run.

An smp U-Net (ResNet-18 encoder, random weights) on one image; 16 boxes on output channel 1.
areacam explains all 16 in one call, reading every target from each masked / ablated / occluded /
interpolated forward pass. The peers explain one region per call, as their APIs ask: pytorch-grad-cam
with ``SemanticSegmentationTarget`` (batch size 32, as areacam's), captum with a wrapper module that
sums the box (``perturbations_per_eval=32`` for Occlusion, captum's default all-steps-at-once batch
for Integrated Gradients, no convergence delta: its cheapest call). Both sides are checked to give
the same maps first.

    python scripts/bench_methods.py --threads 2 [--size 64] [--layer encoder.layer1] [--repeats 3] [--no-record]
"""

from __future__ import annotations

import argparse
import contextlib
import io

import numpy as np
import segmentation_models_pytorch as smp
import torch
from bench_cam import boxes
from benchlib import add_device_args, apply_device_args, machine, record, timeit
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import Occlusion as CaptumOcclusion
from pytorch_grad_cam import AblationCAM as PgcAblationCAM
from pytorch_grad_cam import ScoreCAM as PgcScoreCAM
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from torch import nn

import areacam as ac

CHANNEL = 1


class RegionSum(nn.Module):
    """captum's forward for one region: the sum of one output channel over a box, per sample."""

    def __init__(self, model: nn.Module, box: tuple[int, int, int, int]):
        super().__init__()
        self.model, self.box = model, box

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, left, bottom, right = self.box
        return self.model(x)[:, CHANNEL, top:bottom, left:right].sum(dim=(1, 2))


class RegionSums(nn.Module):
    """All boxes at once, ``(B, K)``: captum's 'aggregate' output mode (one sample, ``perturbations_per_eval=1``)."""

    def __init__(self, model: nn.Module, regions: list[tuple[int, int, int, int]]):
        super().__init__()
        self.model, self.regions = model, regions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)[:, CHANNEL]
        return torch.stack([out[:, t:b, x0:x1].sum(dim=(1, 2)) for t, x0, b, x1 in self.regions], dim=1)


def quiet(fn):
    """``fn`` with the peers' progress bars silenced (their cost is still timed)."""

    def run():
        with contextlib.redirect_stderr(io.StringIO()):
            return fn()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_args(parser)
    parser.add_argument("--size", type=int, default=64, help="image side (a multiple of 32)")
    parser.add_argument("--layer", default="encoder.layer1", help="the CAMs' layer (one pass per channel)")
    parser.add_argument("--steps", type=int, default=50, help="Integrated Gradients steps")
    parser.add_argument("--window", type=int, default=8, help="Occlusion window side (stride: half)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    device = apply_device_args(args)

    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=3).eval().to(device)
    size = args.size
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    regions = boxes(size, side=size // 4)
    targets = [ac.Area(box=box, channel=CHANNEL) for box in regions]
    layer = model.get_submodule(args.layer)
    masks = []
    for top, left, bottom, right in regions:
        mask = np.zeros((size, size), np.float32)
        mask[top:bottom, left:right] = 1
        masks.append(mask)
    window, stride = (3, args.window, args.window), (3, args.window // 2, args.window // 2)
    wrappers = [RegionSum(model, box) for box in regions]

    def pgc_loop(cls, **kwargs):
        def run():
            with cls(model=model, target_layers=[layer], **kwargs) as cam:
                cam.batch_size = 32  # Score-CAM reads the attribute (default 16); Ablation-CAM's default is 32
                maps = [cam(input_tensor=x, targets=[SemanticSegmentationTarget(CHANNEL, mask)]) for mask in masks]
            return np.concatenate(maps)

        return quiet(run)

    cases = [
        ("Score-CAM", ac.ScoreCAM(model, layer, batch_size=32), pgc_loop(PgcScoreCAM), "maps", "pytorch-grad-cam"),
        (
            "Ablation-CAM",
            ac.AblationCAM(model, layer, batch_size=32),
            pgc_loop(PgcAblationCAM),
            "maps",
            "pytorch-grad-cam",
        ),
        (
            "Integrated Gradients",
            ac.IntegratedGradients(model, steps=args.steps),
            lambda: torch.cat([CaptumIG(w).attribute(x, n_steps=args.steps) for w in wrappers]),
            "raw",
            "captum",
        ),
        (
            "Occlusion",
            ac.Occlusion(model, window, stride, batch_size=32),
            lambda: torch.cat(
                [
                    CaptumOcclusion(w).attribute(
                        x, sliding_window_shapes=window, strides=stride, perturbations_per_eval=32
                    )
                    for w in wrappers
                ]
            ),
            "raw",
            "captum",
        ),
    ]
    rows = []
    for name, ours, theirs, field, peer in cases:
        got = getattr(ours(x, targets), field)[0].detach().cpu()
        expected = torch.as_tensor(theirs()).detach().cpu()
        scale = float(expected.abs().max())
        error = float((got - expected).abs().max()) / scale
        assert error < 1e-3, f"{name}: areacam and {peer} disagree (relative error {error:.2e})"
        t_ours = timeit(lambda ours=ours: ours(x, targets), args.repeats, warmup=0)
        t_theirs = timeit(theirs, args.repeats, warmup=0)
        rows.append(
            f"| {name} | {t_ours:.2f} s | {peer}, 16 calls: {t_theirs:.2f} s | **{t_theirs / t_ours:.1f}x** "
            f"| {error:.1e} |"
        )

    aggregate = CaptumOcclusion(RegionSums(model, regions))

    def captum_aggregate():
        return aggregate.attribute(x, sliding_window_shapes=window, strides=stride, perturbations_per_eval=1)

    occlusion = cases[-1][1](x, targets).raw[0]
    assert torch.allclose(captum_aggregate(), occlusion, rtol=1e-3, atol=1e-3 * float(occlusion.abs().max()))
    t_aggregate = timeit(captum_aggregate, args.repeats, warmup=0)
    with torch.no_grad():
        found = []
        handle = layer.register_forward_hook(lambda m, i, o: found.append(o.shape[1]))
        model(x)
        handle.remove()
    command = (
        f"python scripts/bench_methods.py --threads {torch.get_num_threads()} --size {size} "
        f"--layer {args.layer} --steps {args.steps} --window {args.window} --repeats {args.repeats}"
    )
    text = "\n".join(
        [
            f"## More methods: `{command}`",
            "",
            f"16 box targets ({size // 4}x{size // 4}, channel {CHANNEL}) on one {size}x{size} image through an smp "
            f"U-Net (ResNet-18 encoder); CAMs at `{args.layer}` ({found[0]} channels, so {found[0]} forward passes "
            f"per call), Integrated Gradients with {args.steps} Gauss-Legendre steps, Occlusion with a "
            f"{args.window}x{args.window} window and stride {args.window // 2}. "
            f"Measured on {device.type}, {machine()}; "
            f"median of {args.repeats} runs, all in one process.",
            "",
            "| method | areacam, one call | peer | ratio (peer / areacam) | max relative difference |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
            f'captum\'s Occlusion can also take all 16 regions as one `(1, 16)` output (its "aggregate" mode, which '
            f"forces `perturbations_per_eval=1`): {t_aggregate:.2f} s.",
        ]
    )
    print(text)
    if not args.no_record:
        record("bench_methods", text)


if __name__ == "__main__":
    main()
