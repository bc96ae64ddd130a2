"""Benchmark: areacam.Lime against the ``lime`` package driven directly, K region targets of a dense model.

Same model, images, superpixels (lime's default quickshift) and random_state in both; the lime package
runs with its defaults (batch_size=10) the way a user would drive it: (a) one ``explain_instance`` per
image with a ``classifier_fn`` returning all K region scores and ``labels=range(K)``, and (b) one call
per target. Prints the times, the speed-ups and the largest weight difference to (a).

    .venv/bin/python scripts/bench_lime.py [--samples 1000] [--images 2] [--size 96] [--threads N] [--append]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import cv2
import numpy as np
import torch
from bench_filters import append_performance
from benchlib import add_device_args, apply_device_args
from torch import nn

from areacam.methods.lime import Lime
from areacam.targets import Area


def dense_model(width: int) -> nn.Module:
    """A small fully convolutional net: (B, 3, H, W) -> (B, 2, H, W) logits."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2, 1),
    ).eval()


def images(count: int, size: int) -> torch.Tensor:
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    out = [cv2.resize(photos[i % len(photos)], (size, size), interpolation=cv2.INTER_AREA) for i in range(count)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64, help="areacam's batch size (lime keeps its 10)")
    parser.add_argument("--width", type=int, default=16, help="channels of the dense model")
    add_device_args(parser)
    args = parser.parse_args()
    device = apply_device_args(args)
    model, x = dense_model(args.width).to(device), images(args.images, args.size).to(device)
    s = args.size
    boxes = [
        (0, 0, s // 2, s // 2),
        (0, s // 2, s // 2, s),
        (s // 2, 0, s, s // 2),
        (s // 4, s // 4, 3 * s // 4, 3 * s // 4),
    ]
    targets = [Area(box=box, channel=1) for box in boxes]
    k = len(targets)

    start = time.perf_counter()
    ours = Lime(model, num_samples=args.samples, batch_size=args.batch_size, random_state=0, progress=False)(x, targets)
    t_ours = time.perf_counter() - start

    from lime.lime_image import LimeImageExplainer

    def scores(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().contiguous())
            return torch.stack([t(out, out) for t in targets], dim=1).cpu().numpy()

    quiet = open(os.devnull, "w")  # lime's own tqdm bar
    stderr, sys.stderr = sys.stderr, quiet
    try:
        explainer = LimeImageExplainer(random_state=0)
        start = time.perf_counter()
        joint = [
            explainer.explain_instance(
                img.permute(1, 2, 0).cpu().numpy(), scores, labels=range(k), top_labels=None, num_samples=args.samples
            )
            for img in x
        ]
        t_joint = time.perf_counter() - start
        explainer = LimeImageExplainer(random_state=0)
        start = time.perf_counter()
        for img in x:
            for j in range(k):
                explainer.explain_instance(
                    img.permute(1, 2, 0).cpu().numpy(),
                    lambda b, j=j: scores(b)[:, j : j + 1],
                    labels=(0,),
                    top_labels=None,
                    num_samples=args.samples,
                )
        t_each = time.perf_counter() - start
    finally:
        sys.stderr = stderr

    diff = 0.0
    for b, exp in enumerate(joint):
        for j in range(k):
            ref = dict(exp.local_exp[j])
            ref = np.array([ref[i] for i in range(len(ref))])
            diff = max(diff, float(np.abs(ref - ours.raw[b, j, : len(ref)].cpu().numpy()).max() / np.abs(ref).max()))
    segments = int(ours.segments.amax(dim=(1, 2)).float().mean().item()) + 1
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    )
    lines = [
        f"- `scripts/bench_lime.py --samples {args.samples} --images {args.images} --size {args.size} "
        f"--width {args.width} --batch-size {args.batch_size} --device {args.device} "
        f"--threads {torch.get_num_threads()}` "
        f"({where}; {k} region targets, "
        f"~{segments} quickshift superpixels): "
        f"areacam {t_ours:.2f} s; lime one call per image with all {k} labels {t_joint:.2f} s "
        f"(**{t_joint / t_ours:.1f}x**); lime one call per target {t_each:.2f} s (**{t_each / t_ours:.1f}x**); "
        f"largest relative weight difference to lime {diff:.1e}",
    ]
    print("\n".join(lines))
    if args.append:
        append_performance(lines)


if __name__ == "__main__":
    main()
