"""Peak memory of a stitched Grad-CAM on a large volume, each run in its own child process.

A 160^3 volume through ``ac.SlidingWindow(roi 96^3, overlap 0.25, batch_size=1)`` (8 patches) around a
MONAI 3-D UNet of the size MONAI's spleen tutorial uses (channels 16-256, 2 residual units, random
weights): 8 box targets explained by Grad-CAM at ``model.model.1`` in one call. For scale, a second
child runs only MONAI's ``sliding_window_inference`` without gradients on the same volume. The peak
resident set size of each child is read with ``resource.getrusage(RUSAGE_CHILDREN)`` after it exits.

    python scripts/memory_volume.py [--no-record]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

LIMIT_GB = 8.0
SIZE, ROI, OVERLAP = 160, 96, 0.25


def build():
    import torch
    from monai.networks import nets

    torch.manual_seed(0)
    return nets.UNet(3, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2).eval()


def boxes() -> list[tuple[int, ...]]:
    """8 boxes of 32^3, one in each octant of the volume."""
    lo, hi = 16, SIZE - 48
    return [(z, y, x, z + 32, y + 32, x + 32) for z in (lo, hi) for y in (lo, hi) for x in (lo, hi)]


def child(kind: str) -> None:
    import torch

    import areacam as ac

    torch.set_num_threads(2)
    x = torch.rand(1, 1, SIZE, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    net = build()
    start = time.perf_counter()
    if kind == "infer":
        from monai.inferers import sliding_window_inference

        with torch.no_grad():
            out = sliding_window_inference(x, (ROI,) * 3, 1, net, overlap=OVERLAP)
        print(f"output {tuple(out.shape)}")
    else:
        window = ac.SlidingWindow(net, ROI, overlap=OVERLAP, batch_size=1)
        expl = ac.GradCAM(window, "model.model.1", layout="nchw")(x, [ac.Area(box=b, channel=1) for b in boxes()])
        assert expl.maps.shape == (1, 8, SIZE, SIZE, SIZE) and torch.isfinite(expl.maps).all()
        print(f"maps {tuple(expl.maps.shape)}, {expl.layout}")
    print(f"seconds {time.perf_counter() - start:.1f}")


def measure(kind: str) -> tuple[float, str]:
    """Peak RSS in GB of one child run of ``kind`` and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind], capture_output=True, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise SystemExit(f"the {kind} child failed:\n{done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux: the largest child so far
    if peak <= before:
        raise SystemExit(f"the {kind} child did not raise the children's peak; run it first or alone")
    return peak / 2**20, " ".join(done.stdout.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=("infer", "gradcam"), help=argparse.SUPPRESS)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib import machine, record

    infer, infer_out = measure("infer")  # the smaller one first: the children's peak only grows
    cam, cam_out = measure("gradcam")
    verdict = "within" if cam <= LIMIT_GB else "OVER"
    text = "\n".join(
        [
            "## Memory: `python scripts/memory_volume.py`",
            "",
            f"Measured on {machine()}; peak resident set size of each child process (`getrusage(RUSAGE_CHILDREN)`).",
            "",
            "| run | peak RSS | what it printed |",
            "| --- | --- | --- |",
            f"| MONAI `sliding_window_inference`, no gradients, {SIZE}^3, roi {ROI}^3 | {infer:.2f} GB | {infer_out} |",
            f"| areacam Grad-CAM, 8 box targets, `SlidingWindow(roi {ROI}^3, overlap {OVERLAP}, batch_size=1)` "
            f"| **{cam:.2f} GB** ({verdict} {LIMIT_GB:.0f} GB) | {cam_out} |",
        ]
    )
    print(text)
    if not args.no_record:
        record("memory_volume", text)


if __name__ == "__main__":
    main()
