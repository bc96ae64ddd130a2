"""What a run does to each batch: the methods, targets and metrics, applied with bounded memory, and the
batches it cuts from its chunks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from areacam import metrics as ac_metrics
from areacam._util.errors import one_line
from areacam.app.forward import COLUMN, is_column
from areacam.app.loading import InputError
from areacam.app.run.datasets import RunData, collate
from areacam.app.run.targets import SampleSpec, parse_run_target
from areacam.app.spec import make_explainer, needs_truth
from areacam.core.forward import forward_args as pack_forward_args
from areacam.methods.registry import Method
from areacam.metrics.catalog import names as metric_names
from areacam.targets.base import Target
from areacam.targets.errors import SegmentationError

__all__ = ["METRICS", "ChunkBatches", "Work", "chunk_len", "try_first"]

#: Per-sample metrics ``--metrics`` offers (every localisation metric, by its command-line name): the
#: column prefix of each.
METRICS = {name.replace("_", "-"): name for name in metric_names(category="localisation")}


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
        return sum(math.ceil(chunk_len(c, self.chunk_size, self.total) / self.batch_size) for c in self.chunks)


def chunk_len(chunk: int, chunk_size: int, total: int) -> int:
    return min(total, (chunk + 1) * chunk_size) - chunk * chunk_size


class Work:
    """The methods, targets and metrics of a run, applied batch by batch with bounded memory."""

    def __init__(
        self,
        model: nn.Module,
        methods: list[Method],
        layer: nn.Module | None,
        specs: list[str],
        metrics: list[str],
        shape: tuple[int, ...],
        data: RunData,
        max_memory: int,
        tolerance: int = 0,
        forward_kwargs: Mapping[str, Any] | None = None,
    ):
        self.model, self.methods, self.specs, self.metrics = model, methods, specs, metrics
        forward_kwargs = dict(forward_kwargs or {})
        #: ``{keyword: column}`` of the per-sample forward arguments read from the ``--labels`` table.
        self.column_of = {k: v[len(COLUMN) :] for k, v in forward_kwargs.items() if is_column(v)}
        #: The forward arguments passed unchanged to every batch.
        self.constants = {k: v for k, v in forward_kwargs.items() if k not in self.column_of}
        self.tolerance = tolerance
        self.targets = [parse_run_target(spec, len(shape) - 1) for spec in specs]
        self.explainers = [make_explainer(m, model, layer, shape[1:]) for m in methods]
        self.shape = shape
        self.max_memory = max_memory
        needs = " ".join(t.needs for t in self.targets if isinstance(t, SampleSpec))
        if ("mask" in needs or metrics) and not data.has_masks:
            what = _specs_needing(self.targets, "mask") or "--metrics " + " ".join(metrics)
            raise InputError(f"{what} needs a mask per sample; {data.describe} has none (give --masks)")
        if "label" in needs and not data.has_labels:
            raise InputError(
                f"{_specs_needing(self.targets, 'label')} needs a label per sample; {data.describe} "
                "has none (give --labels or --masks, or a dataset of (image, label))"
            )
        self.needs_label = "label" in needs
        self.columns = [f"{m.name} {spec}" for m in methods for spec in specs]
        #: The columns whose target is a segmentation error: their ``error_pixels_*`` go into the table.
        self.error_columns = [c for c in range(len(self.columns)) if needs_truth([specs[c % len(specs)]])]

    def groups(self, batch: int) -> list[list[int]]:
        """Target indices cut so that one group's maps for ``batch`` samples fit ``max_memory``."""
        channels, voxels = self.shape[0], math.prod(self.shape[1:])
        per_target = batch * voxels * 4 * 4
        if any(not m.needs_layer for m in self.methods):
            per_target += batch * channels * voxels * 4 * 3
        size = max(1, self.max_memory // per_target)
        k = len(self.targets)
        return [list(range(i, min(k, i + size))) for i in range(0, k, size)]

    def forward_kwargs(self, columns: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, Any]:
        """The forward keywords of one batch: the constants and each column's ``(B,)`` values."""
        return {**self.constants, **{k: columns[c].to(device) for k, c in self.column_of.items()}}

    def __call__(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor | None,
        columns: Mapping[str, torch.Tensor] | None = None,
    ) -> dict[str, np.ndarray]:
        """``maps (B, J, H, W)`` float32, ``score``/``degenerate`` and metrics ``(B, J)`` for the J columns.

        ``columns``: the batch's per-sample ``--labels`` columns ``{name: (B,)}`` the forward arguments read.
        """
        kwargs = self.forward_kwargs(columns or {}, x.device)
        targets: list[Target] = [
            t.build(labels.to(x.device), None if masks is None else masks.to(x.device))
            if isinstance(t, SampleSpec)
            else t
            for t in self.targets
        ]
        maps, scores, degenerate = [], [], []
        groups = self.groups(x.shape[0])
        for explainer in self.explainers:
            for group in groups:
                expl = explainer(x, [targets[k] for k in group], forward_kwargs=kwargs)
                maps.append(expl.maps.detach().float().cpu())
                scores.append(expl.scores.detach().float().cpu())
                degenerate.append(expl.degenerate.detach().cpu())
        out = {"maps": torch.cat(maps, 1), "score": torch.cat(scores, 1), "degenerate": torch.cat(degenerate, 1)}
        if any(isinstance(t, SegmentationError) for t in targets):
            out["error_pixels"] = self._error_pixels(x, targets, kwargs).repeat(1, len(self.explainers))
        if self.metrics:
            if masks is None:
                raise ValueError("the localisation metrics compare maps with masks, but the dataset gave none")
            region = (masks > 0).cpu()
            for name in self.metrics:
                out[METRICS[name]] = _metric(name, out["maps"], region, self.tolerance)
        return {k: v.numpy() for k, v in out.items()}

    def _error_pixels(self, x: torch.Tensor, targets: list[Target], kwargs: dict[str, Any]) -> torch.Tensor:
        """``(B, K)`` size of each fp/fn target's error region in one plain forward pass (NaN for other targets)."""
        with torch.no_grad():
            output = pack_forward_args(self.model, x, (), kwargs, "areacam run").run(self.model, x)
        sizes = torch.full((x.shape[0], len(targets)), float("nan"))
        for k, target in enumerate(targets):
            if isinstance(target, SegmentationError):
                sizes[:, k] = target.size(output, x).float().cpu()
        return sizes


def try_first(work: Work, data: RunData, dev: torch.device) -> None:
    """Explain the first readable sample once, so a bad target, layer or model fails before anything is written."""
    for i in range(min(len(data.ids), 64)):
        sample = data.dataset[i]
        if sample.get("error") is None and (not work.needs_label or sample["label"] >= 0):
            batch = collate([sample])
            try:
                work(batch["image"].to(dev), batch["label"], batch["mask"], batch["columns"])
            except (RuntimeError, ValueError, IndexError, TypeError) as err:
                raise InputError(f"explaining the first sample ({data.ids[i]}) failed: {one_line(err, 300)}") from None
            return


def _specs_needing(targets: list, what: str) -> str:
    return ", ".join(t.spec for t in targets if isinstance(t, SampleSpec) and what in t.needs)


def _metric(name: str, maps: torch.Tensor, masks: torch.Tensor, tolerance: int) -> torch.Tensor:
    """``(B, J)`` metric of ``maps`` against each sample's ``(B, H, W)`` mask (a constant map scores 0)."""
    with warnings.catch_warnings():  # constant maps are flagged in the degenerate_* columns instead
        warnings.simplefilter("ignore", RuntimeWarning)
        if name == "pointing-game":
            return ac_metrics.pointing_game(maps, masks, tolerance=tolerance).float()
        return getattr(ac_metrics, METRICS[name])(maps, masks).float()
