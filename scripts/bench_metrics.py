"""Deletion curves of 16 region targets on the U-Net: areacam against the way the peers compute them.

The U-Net is the models registry's ``unet`` (smp, ResNet-18 encoder, random weights, 4 classes);
16 box targets on a 4x4 grid, one map per image and target, the blur baseline, ``steps`` steps.

- areacam: ``ac.metrics.deletion(..., random=False)``: every (image, target, step) perturbation
  built on the model's device from precomputed removal ranks, the intact and fully blurred images
  scored once for all targets, everything in batches of ``--batch-size``.
- peer-style: what pytorch-grad-cam's perturbation metrics, torchcam and Quantus do: one target at
  a time, one perturbation batch (the images) per step, perturbations built in numpy from an
  ``argsort`` of the map, the intact image scored again for every target.

Both compute the same curves (checked: largest difference printed). The ratio is peer / areacam.

AUPRO (``--case aupro``): ``ac.metrics.aupro`` on ``--maps`` (1,000) random maps of 256x256 with one to
four disc-shaped anomalies each, against a naive loop (:func:`naive_aupro`): ``--thresholds`` (200)
thresholds evenly spaced between the maps' extremes, each one pass over the normal pixels and one over
every region, as the MVTec AD evaluation code does (but stopping past the FPR limit). The naive curve
samples the exact one at its thresholds, so the two areas differ by at most the bound the naive loop
reports (printed and checked).

    python scripts/bench_metrics.py [--images 2] [--size 64] [--steps 20] [--repeats 3] [--no-record]
    python scripts/bench_metrics.py --case aupro [--maps 1000] [--thresholds 200] [--naive-share 1.0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from benchlib import machine, record, timeit

import areacam as ac
from areacam import models
from areacam.metrics.baselines import blur


def boxes(size: int, count: int = 16) -> list[tuple[int, int, int, int]]:
    """A 4x4 grid of boxes of side size/4 over the image."""
    side = size // 4
    return [(r * side, c * side, (r + 1) * side, (c + 1) * side) for r in range(4) for c in range(4)][:count]


def peer_deletion(model, x: torch.Tensor, targets, maps: torch.Tensor, steps: int) -> np.ndarray:
    """Deletion curves one target at a time, one batch of the B images per step, numpy perturbations."""
    batch, channels, height, width = x.shape
    pixels = height * width
    images = x.numpy()
    fill = blur(x).numpy().reshape(batch, channels, pixels)
    curves = np.zeros((batch, len(targets), steps + 1), dtype=np.float32)
    for k, target in enumerate(targets):
        order = np.argsort(-maps[:, k].reshape(batch, -1).numpy(), axis=1, kind="stable")
        for s in range(steps + 1):
            removed = round(s * pixels / steps)
            perturbed = images.copy().reshape(batch, channels, pixels)
            for b in range(batch):
                idx = order[b, :removed]
                perturbed[b][:, idx] = fill[b][:, idx]
            inputs = torch.from_numpy(perturbed.reshape(batch, channels, height, width))
            with torch.no_grad():
                curves[:, k, s] = target(model(inputs), inputs).numpy()
    return curves


def blob_masks(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(n, size, size)`` bool masks, each with one to four discs of radius ``size/32`` to ``size/10``."""
    gen = torch.Generator().manual_seed(seed)
    grid = torch.arange(size, dtype=torch.float32)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for first in range(0, n, 100):  # 100 maps at a time: bounded memory
        m = min(100, n - first)
        count = torch.randint(1, 5, (m, 1), generator=gen)
        active = torch.arange(4)[None] < count  # (m, 4)
        centre = torch.rand(m, 4, 2, generator=gen) * size
        radius = (size / 32) + torch.rand(m, 4, generator=gen) * (size / 10 - size / 32)
        dy = (grid[None, None, :, None] - centre[..., 0, None, None]) ** 2
        dx = (grid[None, None, None, :] - centre[..., 1, None, None]) ** 2
        inside = (dy + dx <= radius[..., None, None] ** 2) & active[..., None, None]
        masks[first : first + m] = inside.any(1)
    return masks


def naive_aupro(maps: np.ndarray, masks: np.ndarray, thresholds: int, fpr_limit: float) -> tuple[float, float]:
    """``(area, bound)``: AUPRO from ``thresholds`` evenly spaced thresholds, each one pass over the
    normal pixels (the false-positive rate) and one over every region (its overlap), the trapezoid rule
    from ``(0, 0)``, interpolated at ``fpr_limit``. Its points lie on the exact curve, which is monotone,
    so between two of them the exact curve stays in the rectangle they span: the area differs from the
    exact one by at most half of each rectangle (the whole one, up to the limit, for the last), over
    ``fpr_limit``: ``bound``."""
    labels, _ = ac.metrics.anomaly.region_labels(torch.from_numpy(masks))
    flat, labels = maps.ravel(), labels.ravel()
    inside = np.flatnonzero(labels)
    order = inside[np.argsort(labels[inside], kind="stable")]
    regions = np.split(order, np.cumsum(np.bincount(labels[inside])[1:])[:-1])
    normal = flat[labels == 0]
    fpr, pro = [0.0], [0.0]
    for t in np.linspace(float(flat.max()), float(flat.min()), thresholds):
        fpr.append(float(np.count_nonzero(normal >= t)) / normal.size)
        pro.append(float(np.mean([np.count_nonzero(flat[r] >= t) / r.size for r in regions])))
        if fpr[-1] >= fpr_limit:
            break
    f, p = np.array(fpr), np.array(pro)
    if f[-1] > fpr_limit:  # interpolate the last segment at the limit
        share = (fpr_limit - f[-2]) / (f[-1] - f[-2])
        p_limit = p[-2] + share * (p[-1] - p[-2])
        bound_last = (fpr_limit - f[-2]) * (p[-1] - p[-2])
        f, p = np.append(f[:-1], fpr_limit), np.append(p[:-1], p_limit)
    else:
        bound_last = 0.0
    area = float(np.sum((f[1:] - f[:-1]) * (p[1:] + p[:-1]) / 2))
    full = slice(None, -1) if bound_last else slice(None)
    bound = float(np.sum(((f[1:] - f[:-1]) * (p[1:] - p[:-1]))[full]) / 2) + bound_last
    return area / fpr_limit, bound / fpr_limit


def bench_aupro(args: argparse.Namespace) -> None:
    """``ac.metrics.aupro`` on ``args.maps`` random 256x256 maps against :func:`naive_aupro`."""
    size, limit = args.map_size, 0.3
    masks = blob_masks(args.maps, size)
    gen = torch.Generator().manual_seed(1)
    maps = torch.rand(args.maps, size, size, generator=gen) + 0.25 * masks.float()  # anomalies score higher
    t0 = time.perf_counter()
    ours = ac.metrics.aupro(maps, masks, fpr_limit=limit)
    t_ours = time.perf_counter() - t0
    t_ours = min(t_ours, timeit(lambda: ac.metrics.aupro(maps, masks, fpr_limit=limit), args.repeats - 1, 0))

    def streamed() -> dict:
        acc = ac.metrics.AnomalyAccumulator()
        for first in range(0, args.maps, 32):  # as areacam run reads its store: 32 maps at a time
            acc.update(maps[first : first + 32], masks[first : first + 32])
        return acc.result(fpr_limit=limit)

    t_stream = timeit(streamed, args.repeats, 0)
    stream = streamed()
    assert abs(stream["aupro"] - ours) <= stream["aupro_bound"] + 1e-9, "the streamed AUPRO is outside its bound"
    subset = max(1, round(args.naive_share * args.maps))
    t0 = time.perf_counter()
    naive, bound = naive_aupro(maps[:subset].numpy(), masks[:subset].numpy(), args.thresholds, limit)
    t_naive = (time.perf_counter() - t0) * args.maps / subset
    same = ac.metrics.aupro(maps[:subset], masks[:subset], fpr_limit=limit) if subset < args.maps else ours
    diff = abs(naive - same)
    assert diff <= bound + 1e-9, f"aupro {same} and the naive loop's {naive} differ by {diff:.2e} > bound {bound:.2e}"
    regions = ac.metrics.anomaly.region_labels(masks)[1]
    command = (
        f"python scripts/bench_metrics.py --case aupro --maps {args.maps} --map-size {size} "
        f"--thresholds {args.thresholds} --naive-share {args.naive_share} --repeats {args.repeats} "
        f"--threads {args.threads}"
    )
    scaled = (
        f"timed on the first {subset} maps and scaled by {args.maps / subset:.1f}"
        if subset < args.maps
        else f"timed on all {args.maps} maps"
    )
    lines = [
        "## AUPRO: `" + command + "`",
        "",
        f"`ac.metrics.aupro(maps, masks, fpr_limit={limit})` on {args.maps} maps of {size}x{size} (uniform noise "
        f"plus 0.25 inside the masks; one to four discs each, {regions} regions in all) against a naive loop of "
        f"{args.thresholds} evenly spaced thresholds, each one pass over the normal pixels and one over every "
        f"region, from the highest down, stopping at the first past the FPR limit (the MVTec AD code computes "
        f"them all; the naive loop {scaled}). Measured on {machine()}; areacam: best of {args.repeats} runs. "
        f"The two AUPROs ({same:.6f} and {naive:.6f}) differ by {diff:.1e}, within the {bound:.1e} the naive "
        "loop's threshold spacing allows (half the rectangle between consecutive curve points, summed).",
        "",
        "| case | time | ratio (naive / areacam) |",
        "| --- | --- | --- |",
        f"| areacam `aupro`: one partition, one sort, one search | {t_ours:.2f} s | **{t_naive / t_ours:.1f}x** |",
        f"| naive: {args.thresholds} thresholds x (normal pixels + every region) | {t_naive:.2f} s | 1 |",
        f"| areacam `AnomalyAccumulator`, 32 maps at a time (what `areacam run --masks` does) | {t_stream:.2f} s "
        f"| {t_naive / t_stream:.1f}x |",
        "",
        f"The streamed AUPRO ({stream['aupro']:.6f}) bins the values (2**20 bins) and reports a bound of "
        f"{stream['aupro_bound']:.1e}; it differs from `aupro`'s by {abs(stream['aupro'] - ours):.1e}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("bench_metrics_aupro", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("deletion", "aupro", "both"), default="both")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--maps", type=int, default=1000, help="AUPRO: number of maps")
    parser.add_argument("--map-size", type=int, default=256, help="AUPRO: side of each map")
    parser.add_argument("--thresholds", type=int, default=200, help="AUPRO: the naive loop's thresholds")
    parser.add_argument("--naive-share", type=float, default=1.0, help="AUPRO: share of maps the naive loop times")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    if not 0 < args.naive_share <= 1:
        parser.error(f"--naive-share must be in (0, 1], got {args.naive_share}")
    torch.set_num_threads(args.threads)
    if args.case in ("aupro", "both"):
        bench_aupro(args)
    if args.case in ("deletion", "both"):
        bench_deletion(args)


def bench_deletion(args: argparse.Namespace) -> None:
    """Deletion curves of 16 box targets: ``ac.metrics.deletion`` against the peer-style loop."""
    torch.manual_seed(0)
    model = models.create("unet", num_classes=4).eval()
    x = torch.rand(args.images, 3, args.size, args.size)
    targets = [ac.Area(box=box, channel=1) for box in boxes(args.size)]
    # Smooth maps without ties, so both sides remove the pixels in exactly the same order.
    maps = torch.nn.functional.avg_pool2d(torch.rand(args.images, len(targets), args.size, args.size), 5, 1, 2)

    def ours():
        return ac.metrics.deletion(
            model, x, targets, maps, steps=args.steps, batch_size=args.batch_size, random=False, progress=False
        )

    def theirs():
        return peer_deletion(model, x, targets, maps, args.steps)

    ours_curves, peer_curves = ours().scores.numpy(), theirs()
    diff = float(np.abs(ours_curves - peer_curves).max() / np.abs(peer_curves).max())
    assert diff < 1e-4, f"areacam and the peer-style loop disagree (relative difference {diff:.1e})"
    t_ours = timeit(ours, args.repeats)
    t_theirs = timeit(theirs, args.repeats)
    t_random = timeit(
        lambda: ac.metrics.deletion(
            model, x, targets, maps, steps=args.steps, batch_size=args.batch_size, random=True, progress=False
        ),
        args.repeats,
    )
    command = (
        f"python scripts/bench_metrics.py --images {args.images} --size {args.size} --steps {args.steps} "
        f"--batch-size {args.batch_size} --repeats {args.repeats} --threads {args.threads}"
    )
    lines = [
        "## Metrics: `" + command + "`",
        "",
        f"Deletion curves of {len(targets)} box targets (`Area(box, channel=1)`) on {args.images} images, "
        f"{args.size}x{args.size}, U-Net (`models.create('unet')`, ResNet-18 encoder), blur baseline, "
        f"{args.steps} steps. Measured on {machine()}; median of {args.repeats} runs, all in one process; "
        f"largest relative curve difference {diff:.1e}.",
        "",
        "| case | time | ratio (peer-style / areacam) |",
        "| --- | --- | --- |",
        f"| areacam `deletion(..., random=False)`, batches of {args.batch_size} | {t_ours:.3f} s | "
        f"**{t_theirs / t_ours:.2f}x** |",
        f"| peer-style: one target at a time, one batch of {args.images} images per step | {t_theirs:.3f} s | 1 |",
        f"| areacam with the random-ranking curves too (default) | {t_random:.3f} s | {t_theirs / t_random:.2f}x |",
        "",
        f"The peer-style loop runs {len(targets)} x {args.steps + 1} forward passes of {args.images} images and "
        "scores the intact image again for every target; areacam runs each inner perturbation once, the intact "
        "and fully blurred images once for all targets, in full batches, building each batch with one "
        "`torch.where` from precomputed removal ranks. Both compute the same curves.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("bench_metrics", text)


if __name__ == "__main__":
    main()
