"""Dataset runs: images/s of ``areacam run`` (1 and 2 processes) against a pytorch-grad-cam loop.

The same smp U-Net (ResNet-18 encoder, random weights, 3 classes), the same generated shapes images
read through a DataLoader with the same batch size and workers, the same 16 box targets of channel 1
per image (a 4x4 grid), Grad-CAM at ``encoder.layer4``:

- pytorch-grad-cam: for each batch, 16 ``GradCAM`` calls with ``SemanticSegmentationTarget`` (one
  per box), then one ``.npy`` file of ``(16, H, W)`` maps per image: the loop users write;
- ``areacam run`` into a zarr store (float32), 1 process, and ``torchrun --standalone
  --nproc_per_node=2``.

Every process uses 1 torch thread (``--threads``): on a small shared CPU, 2 threads per process on
these small convolutions were slower than 1, so 2 processes is the way to use 2 cores.

images/s is counted over the explaining loop (reading, explaining, writing), without process start
and imports; the wall time of each command is printed too. The maps of both agree (largest
difference printed).

    python scripts/bench_run.py [--images 96] [--size 96] [--batch-size 8] [--workers 2] [--threads 1] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
LAYER = "encoder.layer4"


def model() -> torch.nn.Module:
    """The benchmark's U-Net (seeded random weights)."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.Unet("resnet18", encoder_weights=None, classes=3).eval()


def dataset() -> torch.utils.data.Dataset:
    """``BENCH_RUN_IMAGES`` shapes images of ``BENCH_RUN_SIZE`` pixels, as image tensors."""
    from areacam.data import shapes

    count, size = int(os.environ.get("BENCH_RUN_IMAGES", "96")), int(os.environ.get("BENCH_RUN_SIZE", "96"))
    images, _, _ = shapes(count, size=size)
    return torch.utils.data.TensorDataset(images)


class _Images(torch.utils.data.Dataset):
    """The same images as plain tensors (TensorDataset yields 1-tuples)."""

    def __init__(self, inner: torch.utils.data.Dataset):
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.inner[i][0]


def images() -> torch.utils.data.Dataset:
    return _Images(dataset())


def boxes(size: int) -> list[tuple[int, int, int, int]]:
    """A 4x4 grid of boxes of a third of the side."""
    side = size // 3
    step = (size - side) // 3
    return [(r * step, c * step, r * step + side, c * step + side) for r in range(4) for c in range(4)]


def pgc_loop(out: Path, size: int, batch_size: int, workers: int) -> float:
    """pytorch-grad-cam over the DataLoader, one .npy per image; returns the loop's seconds."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    net = model()
    cam = GradCAM(model=net, target_layers=[net.get_submodule(LAYER)])
    masks = []
    for top, left, bottom, right in boxes(size):
        mask = np.zeros((size, size), np.float32)
        mask[top:bottom, left:right] = 1
        masks.append(mask)
    loader = torch.utils.data.DataLoader(images(), batch_size=batch_size, num_workers=workers)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    index = 0
    for x in loader:
        maps = np.stack([cam(input_tensor=x, targets=[SemanticSegmentationTarget(1, m)] * len(x)) for m in masks], 1)
        for sample in maps:
            np.save(out / f"{index:06d}.npy", sample)
            index += 1
    return time.perf_counter() - start


def areacam_run(
    out: Path, size: int, batch_size: int, workers: int, processes: int, threads: int
) -> tuple[dict, float]:
    """``areacam run`` (under torchrun for 2 processes); returns its summary and the command's wall time."""
    script = Path(__file__).resolve()
    targets = [f"area:{top},{left},{bottom},{right}:1" for top, left, bottom, right in boxes(size)]
    args = [
        "run",
        "--model",
        f"{script}:model",
        "--data",
        f"{script}:images",
        "--method",
        "gradcam",
        "--layer",
        LAYER,
        "--target",
        *targets,
        "--out",
        str(out),
        "--batch-size",
        str(batch_size),
        "--chunk-size",
        str(4 * batch_size),
        "--workers",
        str(workers),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    if processes == 1:
        command = [sys.executable, "-m", "areacam", *args]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            "-m",
            "areacam",
            *args,
        ]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    return json.loads((out / "summary.json").read_text()), wall


def main() -> None:
    from benchlib import machine, record

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (1)")
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args()
    os.environ["BENCH_RUN_IMAGES"], os.environ["BENCH_RUN_SIZE"] = str(args.images), str(args.size)
    torch.set_num_threads(args.threads)
    from areacam import open_run

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t_pgc = pgc_loop(folder / "pgc", args.size, args.batch_size, args.workers)
        one, wall_one = areacam_run(folder / "one", args.size, args.batch_size, args.workers, 1, args.threads)
        two, wall_two = areacam_run(folder / "two", args.size, args.batch_size, args.workers, 2, args.threads)
        theirs = np.stack([np.load(p) for p in sorted((folder / "pgc").glob("*.npy"))])
        ours = np.asarray(open_run(folder / "one").maps)
        diff = float(np.abs(ours - theirs).max())
        diff_two = float(np.abs(np.asarray(open_run(folder / "two").maps) - ours).max())
    pgc_rate = args.images / t_pgc
    rate_one, rate_two = one["images_per_s"], two["images_per_s"]
    command = (
        f"python scripts/bench_run.py --images {args.images} --size {args.size} "
        f"--batch-size {args.batch_size} --workers {args.workers} --threads {args.threads}"
    )
    lines = [
        "## Dataset runs: `" + command + "`",
        "",
        f"Measured on {machine()}. U-Net (ResNet-18 encoder), {args.images} shapes images of {args.size}x{args.size}, "
        f"DataLoader batch {args.batch_size} with {args.workers} workers, Grad-CAM at `{LAYER}` for 16 box targets "
        f"of channel 1 per image, {args.threads} torch thread(s) per process; images/s over the explaining loop "
        "(reading, explaining, writing).",
        "",
        "| run | images/s | ratio to the pgc loop | command wall time |",
        "| --- | --- | --- | --- |",
        f"| pytorch-grad-cam loop: 16 calls per batch, one `.npy` per image | {pgc_rate:.1f} | 1.00x | "
        f"{t_pgc:.1f} s (loop) |",
        f"| `areacam run`, 1 process | {rate_one:.1f} | **{rate_one / pgc_rate:.2f}x** | {wall_one:.1f} s |",
        f"| `torchrun --nproc_per_node=2 -m areacam run` | {rate_two:.1f} | "
        f"**{rate_two / pgc_rate:.2f}x** | {wall_two:.1f} s |",
        "",
        f"Largest map difference: areacam vs pytorch-grad-cam {diff:.1e}; 2 processes vs 1 {diff_two:.1e}.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record("bench_run", text)


if __name__ == "__main__":
    main()
