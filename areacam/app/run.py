"""``areacam run``: explain every sample of a dataset into a resumable store, on one process or many.

One process::

    areacam run --model unet --weights unet.pt --data shapes --method gradcam --layer decoder.blocks.1 \\
        --target segment:label area:mask --metrics pointing-game --out run.zarr

Many (one machine; ``--nnodes``/``--rdzv-endpoint`` for several)::

    torchrun --nproc_per_node=4 -m areacam run ...same arguments...

The samples are cut into chunks of ``--chunk-size``; rank ``r`` of ``W`` takes every ``W``-th chunk
still to do, writes its maps into the one store and commits each chunk with its manifest entry
(:mod:`areacam.store`). A rerun with the same arguments does only the chunks not yet committed; rank 0
writes the table and the summary at the end. The same as a Python function: :func:`run`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from .. import store as run_store
from ..optional import require
from ..progress import progress_bar
from ..targets import Target
from .datasets import EMBEDDED_HELP, RunData, collate, image_size, open_data
from .loading import InputError, default_size, input_channels, load_model
from .sample_targets import RUN_SPEC_HELP, SampleSpec, parse_run_target
from .spec import METHODS, Method, SpecError, get_method, make_explainer, method_layer

__all__ = ["METRICS", "add_run_args", "parse_memory", "run", "run_from_args"]

#: Per-sample metrics ``--metrics`` offers: column prefix of each.
METRICS = {"pointing-game": "pointing_game", "relevance-mass": "relevance_mass", "relevance-rank": "relevance_rank"}

RUN_EXAMPLE = """examples:
  areacam run --model unet --weights unet.pt --data shapes:0-200 --size 32 32 --method gradcam \\
      --layer decoder.blocks.1 --target segment:label area:mask --metrics pointing-game --out run.zarr
  torchrun --nproc_per_node=2 -m areacam run ...the same arguments...   # 2 processes, one store
  areacam report run.zarr --by pointing_game_0

DATA: a folder of images (recursive: PNG, JPEG, TIFF, BMP, .npy) with optional --masks/--labels;
MODULE:FACTORY returning a Dataset of image tensors or (image, label_or_mask); or """ + EMBEDDED_HELP + """

target SPECs: """ + RUN_SPEC_HELP


# ------------------------------------------------------------------------------------------ arguments


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``areacam run``."""
    parser.add_argument("--model", required=True, metavar="MODEL", help="registry name or MODULE:FACTORY")
    parser.add_argument("--weights", metavar="CKPT", help="checkpoint: models.save() file or a state dict")
    parser.add_argument("--data", required=True, metavar="DATA", help="folder, MODULE:FACTORY, shapes or digits")
    parser.add_argument("--masks", metavar="DIR", help="folder of masks, same relative paths as --data")
    parser.add_argument("--labels", metavar="CSV", help="CSV with columns id (relative path) and label")
    parser.add_argument("--size", nargs=2, type=int, metavar=("H", "W"),
                        help="resize every image (default: the model's size, else the first image's)")
    parser.add_argument("--method", nargs="+", required=True, metavar="NAME",
                        help=f"one or more of: {', '.join(METHODS)}")
    parser.add_argument("--layer", metavar="NAME", help="layer for CAM methods (see 'areacam layers')")
    parser.add_argument("--target", nargs="+", required=True, metavar="SPEC", help=RUN_SPEC_HELP)
    parser.add_argument("--metrics", nargs="+", default=[], metavar="NAME", choices=list(METRICS),
                        help=f"per-sample metrics against each sample's mask: {', '.join(METRICS)}")
    parser.add_argument("--tolerance", type=int, default=0, metavar="PX",
                        help="pointing game: pixels a peak may lie outside the mask and still hit (0)")
    parser.add_argument("--out", required=True, metavar="STORE", help="store folder (created; a rerun resumes it)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="samples per forward pass (16)")
    parser.add_argument("--chunk-size", type=int, default=32, metavar="N",
                        help="samples per committed chunk (32): the unit of resumption")
    parser.add_argument("--workers", type=int, default=2, metavar="N", help="DataLoader workers per process (2)")
    parser.add_argument("--float16", action="store_true", help="store the maps as float16 (half the space)")
    parser.add_argument("--max-memory", default="1GB", metavar="SIZE",
                        help="budget for one batch's maps, e.g. 512MB, 2GB (1GB); targets are split to fit")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: each process's GPU if any, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def parse_memory(text: str | int) -> int:
    """``"512MB"``, ``"2GB"``, ``"1.5G"`` or a number of bytes -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", str(text).lower())
        if match is None:
            raise InputError(f"--max-memory {text!r}: expected a size such as 512MB or 2GB")
        value = int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))
    if value < 1:
        raise InputError(f"--max-memory {text!r}: must be positive")
    return value


def run_from_args(args: argparse.Namespace) -> int:
    """``areacam run`` from parsed arguments; returns the exit status."""
    run(
        args.model, args.data, args.method, args.target, args.out, weights=args.weights, layer=args.layer,
        masks=args.masks, labels=args.labels, size=args.size, metrics=args.metrics, tolerance=args.tolerance,
        batch_size=args.batch_size,
        chunk_size=args.chunk_size, workers=args.workers, float16=args.float16, max_memory=args.max_memory,
        device=args.device, progress=not args.no_progress,
    )
    return 0


# --------------------------------------------------------------------------------------- distribution


class _Dist:
    """This process's rank and world size, from torchrun's environment; joins the group when W > 1."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.created = False
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                if device.type == "cuda":
                    torch.cuda.set_device(device)
                dist.init_process_group(backend=backend)
                self.created = True

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.created:
            import torch.distributed as dist

            dist.destroy_process_group()


def _device(name: str | None) -> torch.device:
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise InputError(f"--device {name!r}: not a device (cpu, cuda, cuda:1...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"--device {name!r}: CUDA is not available here")
        if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


class ChunkBatches(Sampler[list[int]]):
    """Batches of at most ``batch_size`` indices that never cross a chunk boundary, chunk by chunk."""

    def __init__(self, chunks: Sequence[int], chunk_size: int, batch_size: int, total: int):
        self.chunks, self.chunk_size, self.batch_size, self.total = list(chunks), chunk_size, batch_size, total

    def __iter__(self) -> Iterator[list[int]]:
        for chunk in self.chunks:
            start, stop = chunk * self.chunk_size, min(self.total, (chunk + 1) * self.chunk_size)
            for first in range(start, stop, self.batch_size):
                yield list(range(first, min(stop, first + self.batch_size)))

    def __len__(self) -> int:
        return sum(math.ceil(_chunk_len(c, self.chunk_size, self.total) / self.batch_size) for c in self.chunks)


def _chunk_len(chunk: int, chunk_size: int, total: int) -> int:
    return min(total, (chunk + 1) * chunk_size) - chunk * chunk_size


# -------------------------------------------------------------------------------------------- explain


class Work:
    """The methods, targets and metrics of a run, applied batch by batch with bounded memory."""

    def __init__(self, model: nn.Module, methods: list[Method], layer: nn.Module | None, specs: list[str],
                 metrics: list[str], shape: tuple[int, int, int], data: RunData, max_memory: int,
                 tolerance: int = 0):
        self.model, self.methods, self.specs, self.metrics = model, methods, specs, metrics
        self.tolerance = tolerance
        self.targets = [parse_run_target(spec) for spec in specs]
        self.explainers = [make_explainer(m, model, layer, shape[1:]) for m in methods]
        self.shape = shape
        self.max_memory = max_memory
        needs = " ".join(t.needs for t in self.targets if isinstance(t, SampleSpec))
        if ("mask" in needs or metrics) and not data.has_masks:
            what = _specs_needing(self.targets, "mask") or "--metrics " + " ".join(metrics)
            raise InputError(f"{what} needs a mask per sample; {data.describe} has none (give --masks)")
        if "label" in needs and not data.has_labels:
            raise InputError(f"{_specs_needing(self.targets, 'label')} needs a label per sample; {data.describe} "
                             "has none (give --labels or --masks, or a dataset of (image, label))")
        self.needs_label = "label" in needs
        self.columns = [f"{m.name} {spec}" for m in methods for spec in specs]

    def groups(self, batch: int) -> list[list[int]]:
        """Target indices cut so that one group's maps for ``batch`` samples fit ``max_memory``."""
        channels, height, width = self.shape
        per_target = batch * height * width * 4 * 4
        if any(not m.needs_layer for m in self.methods):
            per_target += batch * channels * height * width * 4 * 3
        size = max(1, self.max_memory // per_target)
        k = len(self.targets)
        return [list(range(i, min(k, i + size))) for i in range(0, k, size)]

    def __call__(self, x: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor | None) -> dict[str, np.ndarray]:
        """``maps (B, J, H, W)`` float32, ``score``/``degenerate`` and metrics ``(B, J)`` for the J columns."""
        targets: list[Target] = [t.build(labels.to(x.device), None if masks is None else masks.to(x.device))
                                 if isinstance(t, SampleSpec) else t for t in self.targets]
        maps, scores, degenerate = [], [], []
        groups = self.groups(x.shape[0])
        for explainer in self.explainers:
            for group in groups:
                expl = explainer(x, [targets[k] for k in group])
                maps.append(expl.maps.detach().float().cpu())
                scores.append(expl.scores.detach().float().cpu())
                degenerate.append(expl.degenerate.detach().cpu())
        out = {"maps": torch.cat(maps, 1), "score": torch.cat(scores, 1), "degenerate": torch.cat(degenerate, 1)}
        if self.metrics:
            region = (masks > 0).cpu()
            for name in self.metrics:
                out[METRICS[name]] = _metric(name, out["maps"], region, self.tolerance)
        return {k: v.numpy() for k, v in out.items()}


def _try_first(work: Work, data: RunData, dev: torch.device) -> None:
    """Explain the first readable sample once, so a bad target, layer or model fails before anything is written."""
    for i in range(min(len(data.ids), 64)):
        sample = data.dataset[i]
        if sample.get("error") is None and (not work.needs_label or sample["label"] >= 0):
            batch = collate([sample])
            try:
                work(batch["image"].to(dev), batch["label"], batch["mask"])
            except (RuntimeError, ValueError, IndexError, TypeError) as err:
                text = " ".join(str(err).split())
                raise InputError(f"explaining the first sample ({data.ids[i]}) failed: {text[:300]}") from None
            return


def _specs_needing(targets: list, what: str) -> str:
    return ", ".join(t.spec for t in targets if isinstance(t, SampleSpec) and what in t.needs)


def _metric(name: str, maps: torch.Tensor, masks: torch.Tensor, tolerance: int) -> torch.Tensor:
    """``(B, J)`` metric of ``maps`` against each sample's ``(B, H, W)`` mask (a constant map scores 0)."""
    from .. import metrics

    with warnings.catch_warnings():  # constant maps are flagged in the degenerate_* columns instead
        warnings.simplefilter("ignore", RuntimeWarning)
        if name == "pointing-game":
            return metrics.pointing_game(maps, masks, tolerance=tolerance).float()
        return getattr(metrics, METRICS[name])(maps, masks).float()


# ---------------------------------------------------------------------------------------------- run


def _fingerprint_model(model: nn.Module) -> str:
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


class _Log:
    """``STORE/run.log``: one line per event, appended by every process; echoed on stderr."""

    def __init__(self, path: Path, rank: int, echo: bool):
        self.path, self.rank, self.echo = path, rank, echo

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} rank {self.rank}: {message}\n"
        with open(self.path, "a") as f:
            f.write(line)
        if self.echo:
            print(f"areacam run: {message}", file=sys.stderr)


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
) -> dict:
    """Explain every sample of ``data`` into the store ``out``; the Python form of ``areacam run``.

    ``model`` is a registry name or ``MODULE:FACTORY`` (with ``weights``), or a module; ``method`` and
    ``target`` one name/SPEC or several; the other arguments are the command's options. Under
    ``torchrun`` each process takes its share of the chunks. Returns the summary (rank 0's, on every
    rank): counts of samples done, skipped, already done before this call, and the store's files.
    Raises ``InputError``/``SpecError`` (``ValueError``) on bad arguments before anything is written,
    and ``run_store.StoreMismatch`` if ``out`` holds a run with other arguments.
    """
    started = time.perf_counter()
    methods_names = [method] if isinstance(method, str) else list(method)
    specs = [target] if isinstance(target, str) else list(target)
    if not methods_names:
        raise SpecError(f"no --method given; valid methods: {', '.join(METHODS)}")
    if not specs:
        raise SpecError(f"no --target given; expected one or more of: {RUN_SPEC_HELP}")
    methods = [get_method(name) for name in methods_names]
    for spec in specs:
        parse_run_target(spec)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise InputError(f"unknown metric {unknown[0]!r}; valid: {', '.join(METRICS)}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise InputError(f"--tolerance must be an int >= 0 (pixels), got {tolerance!r}")
    for name, value in (("--batch-size", batch_size), ("--chunk-size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive int, got {value!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise InputError(f"--workers must be an int >= 0, got {workers!r}")
    budget = parse_memory(max_memory)
    store = Path(out)
    _check_out(store)
    require("zarr", "areacam run")
    dev = _device(device)
    dist = _Dist(dev)
    try:
        return _run(dist, dev, model, data, methods, specs, store, weights=weights, layer=layer, masks=masks,
                    labels=labels, size=size, metrics=list(metrics), tolerance=tolerance, batch_size=batch_size,
                    chunk_size=chunk_size,
                    workers=workers, float16=float16, budget=budget, progress=progress, started=started)
    finally:
        dist.close()


def _run(dist: _Dist, dev: torch.device, model_spec: str | nn.Module, data_spec: str, methods: list[Method],
         specs: list[str], store: Path, *, weights, layer, masks, labels, size, metrics, tolerance, batch_size,
         chunk_size,
         workers, float16, budget, progress, started) -> dict:
    if isinstance(model_spec, nn.Module):
        model, model_name = model_spec, type(model_spec).__name__
    else:
        model, model_name = load_model(model_spec, weights), model_spec
    model_id = _fingerprint_model(model)
    if len(set(dist.gather(model_id))) > 1:
        raise InputError(f"--model {model_name!r} has different weights in each process (a random initialisation?); "
                         "pass --weights, or seed the factory")
    layer_module = method_layer(methods[0], model, layer) if any(m.needs_layer for m in methods) else None
    for m in methods:
        if m.needs_layer and layer_module is None:
            layer_module = method_layer(m, model, layer)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise InputError(f"--size must be two positive ints H W, got {list(size)}")
    hw = tuple(size) if size else default_size(model)
    channels = input_channels(model)
    data = open_data(data_spec, hw, channels, masks=masks, labels=labels)
    shape = image_size(data)
    if shape is None:
        raise InputError(f"--data {data_spec!r}: none of the first samples is readable")
    if hw is None:
        hw = shape[1:]
        data.dataset.size = hw
    if shape[0] != channels:
        raise InputError(f"--data {data_spec!r} has {shape[0]}-channel images; the model reads {channels}")
    shape = (channels, *hw)
    model = model.to(dev)
    work = Work(model, methods, layer_module, specs, metrics, shape, data, budget, tolerance)
    _try_first(work, data, dev)
    n = len(data.ids)
    chunks = math.ceil(n / chunk_size)
    dtype = "float16" if float16 else "float32"
    config = {
        "format": run_store.FORMAT, "model": model_name, "model_sha256": model_id, "info": {"weights": weights},
        "data": data_spec, "masks": masks, "labels": labels, "methods": [m.name for m in methods], "layer": layer,
        "targets": specs, "columns": work.columns, "metrics": metrics, "tolerance": tolerance, "size": list(hw),
        "channels": channels,
        "dtype": dtype, "chunk_size": chunk_size, "samples": n, "chunks": chunks,
        "ids_sha256": hashlib.sha256("\n".join(data.ids).encode()).hexdigest(), "ids": data.ids,
    }
    setup: tuple[str | None, list[int]] = (None, [])
    if dist.rank == 0:
        try:
            done = run_store.prepare_store(store, config, (n, len(work.columns), *hw), chunk_size, dtype)
            setup = (None, sorted(done))
        except (run_store.StoreMismatch, OSError) as err:
            setup = (f"{type(err).__name__}: {err}" if isinstance(err, OSError) else str(err), [])
    error, done = dist.share(setup)
    if error is not None:
        raise InputError(error.replace("PermissionError: ", "--out: cannot write: "))
    log = _Log(store / "run.log", dist.rank, echo=True)
    pending = [c for c in range(chunks) if c not in set(done)]
    before = sum(_chunk_len(c, chunk_size, n) for c in done)
    if not pending:
        summary = None
        if dist.rank == 0:
            if (store / "summary.json").is_file():  # finished before: report it, change nothing
                summary = {**run_store.read_json(store / "summary.json"), "explained_now": 0, "done_before": before}
            else:  # killed after the last commit, before the summary
                summary = _finish(store, config, dist, before=before, now=0, seconds=0.0, started=started)
        summary = dist.share(summary)
        if dist.rank == 0:
            print(f"areacam run: nothing to do: all {n} samples of {store} are done "
                  f"({summary['explained']} explained, {summary['skipped']} skipped)")
        return summary
    if done and dist.rank == 0:
        log(f"resuming: {len(done)} of {chunks} chunks already committed, {len(pending)} to do")
    mine = pending[dist.rank :: dist.world]
    seconds = _explain_chunks(dist, dev, store, data, work, mine, pending, config, log, batch_size, workers, progress)
    dist.barrier()
    summary = None
    if dist.rank == 0:
        now = sum(_chunk_len(c, chunk_size, n) for c in pending)
        summary = _finish(store, config, dist, before=before, now=now, seconds=seconds, started=started)
        print(
            f"areacam run: {summary['explained']} samples explained ({now} now, {before} before), "
            f"{summary['skipped']} skipped (see {store / 'run.log'}), {dist.world} process"
            f"{'es' if dist.world > 1 else ''}, {summary['images_per_s']:.1f} images/s; "
            f"maps {tuple(summary['maps_shape'])} {config['dtype']} and {summary['table']} in {store}"
        )
    return dist.share(summary)


def _explain_chunks(dist: _Dist, dev: torch.device, store: Path, data: RunData, work: Work, mine: list[int],
                    pending: list[int], config: dict, log: _Log, batch_size: int, workers: int,
                    progress: bool) -> float:
    """Explain this rank's chunks, committing each when its last sample is done; returns the seconds spent."""
    zarr = require("zarr", "areacam run")
    array = zarr.open_array(store / "maps", mode="r+")
    n, chunk_size = config["samples"], config["chunk_size"]
    dtype = np.dtype(config["dtype"])
    sampler = ChunkBatches(mine, chunk_size, min(batch_size, chunk_size), n)
    loader = DataLoader(data.dataset, batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                        pin_memory=dev.type == "cuda", persistent_workers=False)
    total_pending = sum(_chunk_len(c, chunk_size, n) for c in pending)
    mine_total = sum(_chunk_len(c, chunk_size, n) for c in mine)
    lead = dist.rank == 0
    pending_set = set(pending)
    already = {c for c in range(config["chunks"]) if c not in pending_set}
    columns = range(len(work.columns))
    state: dict[str, Any] = {"chunk": None}
    start = time.perf_counter()

    def begin(chunk: int) -> None:
        length = _chunk_len(chunk, chunk_size, n)
        state.update(chunk=chunk, maps=np.zeros((length, len(work.columns), *config["size"]), dtype=dtype),
                     rows={}, seen=0, length=length)

    desc = "total" if lead and dist.world > 1 else f"rank {dist.rank}" if dist.world > 1 else "areacam run"
    with progress_bar(total_pending if lead else mine_total, desc, enabled=progress, unit="img", leave=lead,
                      position=dist.rank if dist.world > 1 else None, file=sys.stderr) as bar:
        for batch in loader:
            indices = batch["index"] + [i for i, _ in batch["bad"]]
            chunk = min(indices) // chunk_size
            if state["chunk"] != chunk:
                begin(chunk)
            first = chunk * chunk_size
            for index, error in batch["bad"]:
                log(f"skipped {error}")
                state["rows"][index] = _row(data, index, error=error)
            keep = list(range(len(batch["index"])))
            if work.needs_label and batch["label"] is not None:
                for j in [j for j in keep if int(batch["label"][j]) < 0]:
                    index = batch["index"][j]
                    error = f"{data.paths[index] or data.ids[index]}: no label for a per-sample target"
                    log(f"skipped {error}")
                    state["rows"][index] = _row(data, index, error=error)
                keep = [j for j in keep if int(batch["label"][j]) >= 0]
            if keep:
                x = batch["image"][keep].to(dev, non_blocking=True)
                masks = None if batch["mask"] is None else batch["mask"][keep]
                result = work(x, batch["label"][keep], masks)
                for b, j in enumerate(keep):
                    index = batch["index"][j]
                    state["maps"][index - first] = result["maps"][b]
                    row = _row(data, index, label=int(batch["label"][j]))
                    for c in columns:
                        row[f"score_{c}"] = float(result["score"][b, c])
                        row[f"degenerate_{c}"] = bool(result["degenerate"][b, c])
                        for name in work.metrics:
                            row[f"{METRICS[name]}_{c}"] = float(result[METRICS[name]][b, c])
                    state["rows"][index] = row
            state["seen"] += len(indices)
            if state["seen"] == state["length"]:
                rows = [state["rows"][i] for i in sorted(state["rows"])]
                run_store.commit_chunk(store, array, chunk, first, state["maps"], rows, dist.rank)
                state["chunk"] = None
            if lead and dist.world > 1:
                committed = run_store.done_chunks(store) - already
                bar.n = sum(_chunk_len(c, chunk_size, n) for c in committed)
                bar.refresh()
            else:
                bar.update(len(indices))
    return time.perf_counter() - start


def _row(data: RunData, index: int, label: int = -1, error: str | None = None) -> dict:
    row: dict[str, Any] = {"id": data.ids[index], "index": index, "path": data.paths[index]}
    if error is not None:
        row["error"] = error
        return row
    row["label"] = label
    return row


def _finish(store: Path, config: dict, dist: _Dist, *, before: int, now: int, seconds: float,
            started: float) -> dict:
    """Rank 0: the table and summary.json from the manifest (the source of truth)."""
    entries = list(run_store.manifest_entries(store))
    missing = sorted(set(range(config["chunks"])) - {e["chunk"] for e in entries})
    if missing:
        raise RuntimeError(f"chunks {missing[:5]} of {store} were not committed by their process; rerun to finish")
    rows = [row for entry in entries for row in entry["rows"]]
    table = run_store.write_table(store, rows)
    skipped = [row for row in rows if row.get("error")]
    summary = {
        "samples": config["samples"], "explained": len(rows) - len(skipped), "skipped": len(skipped),
        "skipped_samples": [{"id": r["id"], "path": r["path"], "error": r["error"]} for r in skipped],
        "processes": dist.world, "explained_now": now, "done_before": before,
        "seconds": round(time.perf_counter() - started, 3),
        "images_per_s": now / seconds if seconds > 0 else 0.0,
        "maps_shape": [config["samples"], len(config["columns"]), *config["size"]],
        "table": table, "columns": config["columns"],
    }
    run_store.atomic_write(store / "summary.json", json.dumps(summary, indent=1).encode())
    return summary

