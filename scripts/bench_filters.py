"""Benchmark: FilterVisualizer optimising 64 filters as one batch against 64 sequential runs.

Same model, layer, steps and settings; prints both times and the speed-up.

    .venv/bin/python scripts/bench_filters.py [--filters 64] [--steps 32] [--size 64] [--threads N] [--append]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from benchlib import add_device_args, apply_device_args
from torch import nn

from areacam.inspect.features import FilterVisualizer

ROOT = Path(__file__).resolve().parents[1]

SECTION = "## LIME and filter visualization"


def append_performance(lines: list[str]) -> Path:
    """Add ``lines`` to the ``LIME and filter visualization`` section of docs/performance.md.

    A line replaces an earlier one of the same command (same script and flags); the section ends at
    the next heading or HTML comment, so blocks that other scripts own are left alone.
    """
    path = ROOT / "docs" / "performance.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else "# Performance\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n"
    rows = text.split("\n")
    head = rows.index(SECTION)
    tail = next((i for i in range(head + 1, len(rows)) if rows[i].startswith(("## ", "<!--"))), len(rows))
    commands = {line.split("` (")[0] for line in lines}
    body = [row for row in rows[head + 1 : tail] if row.split("` (")[0] not in commands]
    while body and not body[-1].strip():
        body.pop()
    body = [*body, *lines] + ([""] if tail < len(rows) else [])
    path.write_text("\n".join([*rows[: head + 1], *body, *rows[tail:]]).rstrip("\n") + "\n")
    return path


def conv_model(width: int) -> nn.Module:
    """A small VGG-like feature extractor whose layer ``"5"`` has ``width`` channels."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    ).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    add_device_args(parser)
    args = parser.parse_args()
    device = apply_device_args(args)
    model = conv_model(args.filters).to(device)
    viz = FilterVisualizer(model, "7", size=args.size, steps=args.steps, batch_size=args.filters)
    viz([0])  # warm-up
    filters = list(range(args.filters))

    def timed(run) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    t_batch = timed(lambda: viz(filters))
    t_seq = timed(lambda: [viz([f]) for f in filters])
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} torch threads"
    )
    line = (
        f"- `scripts/bench_filters.py --filters {args.filters} --steps {args.steps} --size {args.size} --device "
        f"{args.device} --threads {torch.get_num_threads()}` ({where}): {args.filters} filters as one batch "
        f"{t_batch:.2f} s, one at a time "
        f"{t_seq:.2f} s (**{t_seq / t_batch:.1f}x**)"
    )
    print(line)
    if args.append:
        append_performance([line])


if __name__ == "__main__":
    main()
