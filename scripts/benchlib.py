"""Small helpers shared by the benchmark scripts: timing and recording figures."""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

PERFORMANCE = Path(__file__).resolve().parent.parent / "docs" / "performance.md"


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timeit_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median wall time of each ``fn()`` in seconds, the functions run in turn in every round, so that a
    change of load on a shared machine falls on all of them rather than on whichever ran then."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


#: The 1-minute load average when the benchmark started: figures taken above 1 are not idle figures.
LOAD_BEFORE = os.getloadavg()[0]


def machine() -> str:
    """One line describing where the figures were measured, with the load average before the run."""
    return (
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}, "
        f"load average {LOAD_BEFORE:.2f} before the run ({'idle' if LOAD_BEFORE < 1 else 'shared'})"
    )


def parse_record_args(doc: str, cases: str = "") -> argparse.Namespace:
    """``--repeats`` and ``--no-record``, shared by the benchmarks that record a table; sets 2 threads.

    ``cases`` (e.g. ``"abcde"``) adds ``--case``: run only the cases named (``args.case``, all by default).
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only; leave docs/performance.md alone")
    if cases:
        parser.add_argument(
            "--case", nargs="+", choices=list(cases), default=list(cases), help="run only these cases (default: all)"
        )
    args = parser.parse_args()
    torch.set_num_threads(2)
    return args


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--threads`` and ``--append``, shared by the LIME and filter benchmarks."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--append", action="store_true", help="append the result to docs/performance.md")


def apply_device_args(args: argparse.Namespace) -> torch.device:
    """Set the thread count asked for and return the device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)


def record(section: str, body: str, path: Path = PERFORMANCE) -> None:
    """Replace (or append) the block of ``section`` in docs/performance.md between its markers."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Performance\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
