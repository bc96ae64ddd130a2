"""The orchestration of a run: load the model and data, prepare or resume the store, share the chunks
between the processes, and write the table and summary at the end."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from areacam._util.io import atomic_write
from areacam._util.optional import require
from areacam.app.forward import COLUMN, is_column
from areacam.app.loading import InputError, default_size, input_channels, load_model
from areacam.app.nifti import load_transform
from areacam.app.run.args import RunConfig, manifest_forward_kwargs, parse_memory
from areacam.app.run.chunks import Log, explain_chunks
from areacam.app.run.datasets import RunData, image_size, open_data
from areacam.app.run.distributed import Distributed, pick_device
from areacam.app.run.setmetrics import describe_set_metrics, set_metrics
from areacam.app.run.work import Work, chunk_len, try_first
from areacam.app.spec import method_layer
from areacam.runs.reader import FORMAT, manifest_entries, read_json
from areacam.runs.writer import StoreMismatch, prepare_store, write_table

__all__ = ["execute", "run"]


def _fingerprint(model: nn.Module) -> str:
    digest = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_out(out: Path) -> None:
    """Fail before any work if ``out`` cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} exists and is not a folder")
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise InputError(f"--out {str(out)!r}: {str(parent)!r} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {str(out)!r}: cannot write into {str(parent)!r} (permission denied)")


def run(
    model: str | nn.Module,
    data: str,
    method: str | Sequence[str],
    target: str | Sequence[str],
    out: str | os.PathLike,
    *,
    weights: str | None = None,
    layer: str | None = None,
    masks: str | None = None,
    labels: str | None = None,
    transform: str | None = None,
    size: Sequence[int] | None = None,
    metrics: Sequence[str] = (),
    tolerance: int = 0,
    batch_size: int = 16,
    chunk_size: int = 32,
    workers: int = 2,
    float16: bool = False,
    max_memory: str | int = "1GB",
    device: str | None = None,
    progress: bool = True,
    forward_kwargs: Mapping[str, Any] | None = None,
) -> dict:
    """Explain every sample of ``data`` into the store ``out``; the Python form of ``areacam run``.

    ``model`` is a registry name or ``MODULE:FACTORY`` (with ``weights``), or a module; ``method`` and
    ``target`` one name/SPEC or several; ``forward_kwargs`` the model's extra keyword arguments (see
    :class:`~areacam.app.run.args.RunConfig`); the other arguments are the command's options. Under
    ``torchrun`` each process takes its share of the chunks. Returns the summary (rank 0's, on every
    rank): counts of samples done, skipped, already done before this call, and the store's files.
    Raises ``InputError``/``SpecError`` (``ValueError``) on bad arguments before anything is written,
    and :class:`~areacam.runs.writer.StoreMismatch` if ``out`` holds a run with other arguments.
    """
    config = RunConfig(
        model=model,
        data=data,
        methods=[method] if isinstance(method, str) else list(method),
        targets=[target] if isinstance(target, str) else list(target),
        out=Path(out),
        weights=weights,
        layer=layer,
        masks=masks,
        labels=labels,
        transform=transform,
        size=tuple(size) if size else None,
        metrics=list(metrics),
        tolerance=tolerance,
        batch_size=batch_size,
        chunk_size=chunk_size,
        workers=workers,
        float16=float16,
        max_memory=parse_memory(max_memory),
        device=device,
        progress=progress,
        forward_kwargs=forward_kwargs or {},
    )
    return execute(config)


def execute(config: RunConfig) -> dict:
    """Run a checked :class:`~areacam.app.run.args.RunConfig` (see :func:`run`)."""
    started = time.perf_counter()
    _check_out(config.out)
    require("zarr", "areacam run")
    dev = pick_device(config.device)
    dist = Distributed(dev)
    try:
        return _execute(config, dist, dev, started)
    finally:
        dist.close()


def _execute(config: RunConfig, dist: Distributed, dev: torch.device, started: float) -> dict:
    store, chunk_size = config.out, config.chunk_size
    if isinstance(config.model, nn.Module):
        model, model_name = config.model, type(config.model).__name__
    else:
        model, model_name = load_model(config.model, config.weights), config.model
    model_id = _fingerprint(model)
    if len(set(dist.gather(model_id))) > 1:
        raise InputError(
            f"--model {model_name!r} has different weights in each process (a random initialisation?); "
            "pass --weights, or seed the factory"
        )
    methods = config.method_specs
    layer_module = next((method_layer(m, model, config.layer) for m in methods if m.needs_layer), None)
    hw = None if config.dims == 3 else config.size or default_size(model)
    channels = input_channels(model)
    columns = sorted({v[len(COLUMN) :] for v in config.forward_kwargs.values() if is_column(v)})
    transform = load_transform(config.transform) if config.transform else None
    data = open_data(
        config.data, hw, channels, masks=config.masks, labels=config.labels, transform=transform, columns=columns
    )
    shape = image_size(data)
    if shape is None:
        first = data.dataset[0].get("error") if data.ids else None
        why = f" (the first: {first})" if first else ""
        raise InputError(f"--data {config.data!r}: none of the first samples is readable{why}")
    if hw is None:
        hw = shape[1:]
        data.dataset.size = hw
    if shape[0] != channels:
        raise InputError(f"--data {config.data!r} has {shape[0]}-channel images; the model reads {channels}")
    model = model.to(dev)
    work = Work(
        model,
        methods,
        layer_module,
        config.targets,
        config.metrics,
        (channels, *hw),
        data,
        config.max_memory,
        config.tolerance,
        config.forward_kwargs,
    )
    try_first(work, data, dev)
    n = len(data.ids)
    chunks = math.ceil(n / chunk_size)
    dtype = "float16" if config.float16 else "float32"
    manifest = {
        "format": FORMAT,
        "model": model_name,
        "model_sha256": model_id,
        "info": {"weights": config.weights},
        "data": config.data,
        "masks": config.masks,
        "labels": config.labels,
        **({"transform": config.transform} if config.transform else {}),  # stores without one stay as they were
        "methods": [m.name for m in methods],
        "layer": config.layer,
        "targets": config.targets,
        "columns": work.columns,
        "metrics": config.metrics,
        "tolerance": config.tolerance,
        "forward_args": manifest_forward_kwargs(config.forward_kwargs),
        "size": list(hw),
        "channels": channels,
        "dtype": dtype,
        "chunk_size": chunk_size,
        "samples": n,
        "chunks": chunks,
        "ids_sha256": hashlib.sha256("\n".join(data.ids).encode()).hexdigest(),
        "ids": data.ids,
    }
    setup: tuple[str | None, list[int]] = (None, [])
    if dist.rank == 0:
        try:
            done = prepare_store(store, manifest, (n, len(work.columns), *hw), chunk_size, dtype)
            setup = (None, sorted(done))
        except (StoreMismatch, OSError) as err:
            setup = (f"{type(err).__name__}: {err}" if isinstance(err, OSError) else str(err), [])
    error, done = dist.share(setup)
    if error is not None:
        raise InputError(error.replace("PermissionError: ", "--out: cannot write: "))
    log = Log(store / "run.log", dist.rank, echo=True)
    pending = [c for c in range(chunks) if c not in set(done)]
    before = sum(chunk_len(c, chunk_size, n) for c in done)
    if not pending:
        summary = None
        if dist.rank == 0:
            if (store / "summary.json").is_file():  # finished before: report it, change nothing
                summary = {**read_json(store / "summary.json"), "explained_now": 0, "done_before": before}
            else:  # killed after the last commit, before the summary
                summary = _finish(
                    store, manifest, dist, before=before, now=0, seconds=0.0, started=started, data=data, options=config
                )
        summary = dist.share(summary)
        if dist.rank == 0:
            print(
                f"areacam run: nothing to do: all {n} samples of {store} are done "
                f"({summary['explained']} explained, {summary['skipped']} skipped)"
            )
        return summary
    if done and dist.rank == 0:
        log(f"resuming: {len(done)} of {chunks} chunks already committed, {len(pending)} to do")
    mine = pending[dist.rank :: dist.world]
    seconds = explain_chunks(
        dist, dev, store, data, work, mine, pending, manifest, log, config.batch_size, config.workers, config.progress
    )
    dist.barrier()
    summary = None
    if dist.rank == 0:
        now = sum(chunk_len(c, chunk_size, n) for c in pending)
        summary = _finish(
            store, manifest, dist, before=before, now=now, seconds=seconds, started=started, data=data, options=config
        )
        print(
            f"areacam run: {summary['explained']} samples explained ({now} now, {before} before), "
            f"{summary['skipped']} skipped (see {store / 'run.log'}), {dist.world} process"
            f"{'es' if dist.world > 1 else ''}, {summary['images_per_s']:.1f} images/s; "
            f"maps {tuple(summary['maps_shape'])} {manifest['dtype']} and {summary['table']} in {store}"
        )
        for line in describe_set_metrics(summary.get("set_metrics")):
            print(f"areacam run: {line}")
    return dist.share(summary)


def _finish(
    store: Path,
    config: dict,
    dist: Distributed,
    *,
    before: int,
    now: int,
    seconds: float,
    started: float,
    data: RunData,
    options: RunConfig,
) -> dict:
    """Rank 0: the table and summary.json from the manifest (the source of truth); with masks, the
    set-level anomaly metrics of every column, streamed from the store (``set_metrics``)."""
    entries = list(manifest_entries(store))
    missing = sorted(set(range(config["chunks"])) - {e["chunk"] for e in entries})
    if missing:
        raise RuntimeError(f"chunks {missing[:5]} of {store} were not committed by their process; rerun to finish")
    rows = [row for entry in entries for row in entry["rows"]]
    table = write_table(store, rows)
    skipped = [row for row in rows if row.get("error")]
    summary = {
        "samples": config["samples"],
        "explained": len(rows) - len(skipped),
        "skipped": len(skipped),
        "skipped_samples": [{"id": r["id"], "path": r["path"], "error": r["error"]} for r in skipped],
        "processes": dist.world,
        "explained_now": now,
        "done_before": before,
        "seconds": round(time.perf_counter() - started, 3),
        "images_per_s": now / seconds if seconds > 0 else 0.0,
        "maps_shape": [config["samples"], len(config["columns"]), *config["size"]],
        "table": table,
        "columns": config["columns"],
    }
    if data.has_masks:
        summary["set_metrics"] = set_metrics(store, data, config["columns"], options.max_memory, options.workers)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    atomic_write(store / "summary.json", json.dumps(summary, indent=1), durable=True)
    return summary
