"""Saliency and guided backprop for 16 region targets on one image: areacam vs captum, one run.

smp U-Net (ResNet-18 encoder, random weights), one 160x160 image, 16 boxes of 32x32 on channel 1.
areacam explains all 16 from one forward pass; captum needs one call per region (a wrapper module
that sums the box), as a user of it would write.

    python scripts/bench_gradients.py [--repeats 5] [--no-record]
"""

from __future__ import annotations

import argparse
import copy

import segmentation_models_pytorch as smp
import torch
from bench_cam import boxes
from benchlib import machine, record, timeit
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import Saliency as CaptumSaliency
from torch import nn

import areacam as ac


class RegionSum(nn.Module):
    """The sum of one output channel over a box, per sample: captum's forward for a region."""

    def __init__(self, model: nn.Module, box: tuple[int, int, int, int], channel: int):
        super().__init__()
        self.model, self.box, self.channel = model, box, channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, left, bottom, right = self.box
        return self.model(x)[:, self.channel, top:bottom, left:right].sum(dim=(1, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=3).eval()
    # captum's ReLU backward hooks fail on in-place ReLUs: give it an out-of-place copy (same numbers)
    plain = copy.deepcopy(model)
    for module in plain.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    x = torch.rand(1, 3, 160, 160)
    regions = boxes(160)
    targets = [ac.Area(box=box, channel=1) for box in regions]
    wrappers = [RegionSum(plain, box, 1) for box in regions]

    rows = []
    for name, ours, theirs, kwargs in [
        ("Saliency", ac.Saliency(model), CaptumSaliency, {"abs": False}),
        ("GuidedBackprop", ac.GuidedBackprop(model), CaptumGuidedBackprop, {}),
    ]:
        methods = [theirs(wrapper) for wrapper in wrappers]

        def captum_loop(methods=methods, kwargs=kwargs):
            return [method.attribute(x, **kwargs) for method in methods]

        expected = torch.cat(captum_loop())
        got = ours(x, targets).raw[0]
        assert torch.allclose(got, expected, rtol=1e-3, atol=1e-6), f"{name}: areacam and captum disagree"
        t_ours = timeit(lambda ours=ours: ours(x, targets), args.repeats)
        t_theirs = timeit(captum_loop, args.repeats)
        rows.append(f"| {name} | {t_ours:.3f} s | {t_theirs:.3f} s | **{t_theirs / t_ours:.2f}x** |")

    text = "\n".join(
        [
            "## Gradients: `python scripts/bench_gradients.py`",
            "",
            f"16 box targets (32x32, channel 1) on one 160x160 image, smp U-Net (ResNet-18 encoder). "
            f"Measured on {machine()}; median of {args.repeats} runs, all in one process.",
            "",
            "| method | areacam, one call | captum, 16 calls | ratio (captum / areacam) |",
            "| --- | --- | --- | --- |",
            *rows,
        ]
    )
    print(text)
    if not args.no_record:
        record("bench_gradients", text)


if __name__ == "__main__":
    main()
