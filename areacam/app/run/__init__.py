"""``areacam run``: explain every sample of a dataset into a resumable store, on one process or many.

One process::

    areacam run --model unet --weights unet.pt --data shapes --method gradcam --layer decoder.blocks.1 \\
        --target segment:label area:mask --metrics pointing-game --out run.zarr

Many (one machine; ``--nnodes``/``--rdzv-endpoint`` for several)::

    torchrun --nproc_per_node=4 -m areacam run ...same arguments...

The samples are cut into chunks of ``--chunk-size``; rank ``r`` of ``W`` takes every ``W``-th chunk
still to do, writes its maps into the one store and commits each chunk with its manifest entry
(:mod:`areacam.runs`). A rerun with the same arguments does only the chunks not yet committed; rank 0
writes the table and the summary at the end. The same as a Python function: :func:`run`.

Modules: :mod:`~.args` (the arguments and :class:`~.args.RunConfig`), :mod:`~.datasets` (the inputs),
:mod:`~.targets` (per-sample target SPECs), :mod:`~.work` (the maps and metrics of a batch),
:mod:`~.chunks` (the chunk loop), :mod:`~.distributed` (the processes), :mod:`~.loop` (the run).
"""

from __future__ import annotations

import argparse

from areacam.app.run.args import RUN_EXAMPLE, RunConfig, add_run_args, config_from_args, parse_memory
from areacam.app.run.loop import execute, run
from areacam.app.run.work import METRICS

__all__ = ["METRICS", "RUN_EXAMPLE", "RunConfig", "add_run_args", "parse_memory", "run", "run_from_args"]


def run_from_args(args: argparse.Namespace) -> int:
    """``areacam run`` from parsed arguments; returns the exit status."""
    execute(config_from_args(args))
    return 0
