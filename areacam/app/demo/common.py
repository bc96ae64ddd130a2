"""The demo's run context: where figures go, trained models with reusable checkpoints, held-out data."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from areacam._util.progress import progress_bar
from areacam.app.demo.settings import MODELS

__all__ = ["GROUPS", "Context", "Figure", "label_colors", "sample_per_class"]

# Use-case groups of the report, in page order.
GROUPS = {
    "autoencoder": "Autoencoder reconstruction",
    "segmentation": "Segmentation debugging",
    "classifier": "Classifier analysis",
    "quality": "Which method to trust",
}


@dataclass(frozen=True)
class Figure:
    """One written figure: file name under ``figures/``, report group, title, caption and an optional
    HTML ``table`` shown under it."""

    file: str
    group: str
    title: str
    caption: str
    table: str = ""
    link: str | None = None  # an interactive page next to the figure (path relative to the report)


@dataclass
class Context:
    """Everything a stage needs: where to write, quick or full, and trained models (cached)."""

    out: Path
    quick: bool = False
    progress: bool = True
    log: list[str] = field(default_factory=list)
    _models: dict[str, nn.Module] = field(default_factory=dict)
    _metrics: dict[str, dict] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)  # measurements shared by stages (e.g. CAM layers)

    @property
    def figures(self) -> Path:
        """Folder of the PNG figures."""
        return self.out / "figures"

    def path(self, file: str) -> Path:
        """Where figure ``file`` goes."""
        self.figures.mkdir(parents=True, exist_ok=True)
        return self.figures / file

    def settings(self, key: str) -> dict[str, Any]:
        """The training arguments of model ``key`` for this run."""
        spec = MODELS[key]
        return dict(spec.quick if self.quick else spec.full)

    def checkpoint_dir(self, key: str) -> Path:
        """Folder of model ``key``'s per-epoch checkpoints."""
        return self.out / "checkpoints" / f"{key}-{'quick' if self.quick else 'full'}"

    def model(self, key: str) -> nn.Module:
        """The trained model ``key`` (last epoch), trained now or loaded from reusable checkpoints."""
        if key not in self._models:
            self._models[key] = self._train_or_load(key)
        return self._models[key]

    def epochs(self, key: str) -> list[tuple[int, nn.Module]]:
        """``(epoch, model)`` for each saved epoch of model ``key``."""
        from areacam import models

        self.model(key)
        folder = self.checkpoint_dir(key)
        return [(int(p.stem.split("_")[1]), models.load(p)) for p in sorted(folder.glob("epoch_*.pt"))]

    def metrics(self, key: str) -> dict:
        """The training metrics of model ``key`` (``metrics.json``)."""
        self.model(key)
        return self._metrics[key]

    def _train_or_load(self, key: str) -> nn.Module:
        from areacam import models
        from areacam.models.train import train

        spec = MODELS[key]
        settings = self.settings(key)
        folder = self.checkpoint_dir(key)
        wanted = json.loads(json.dumps({"model": spec.name, "data": spec.data, **settings}))
        stamp = folder / "demo_settings.json"
        last = folder / f"epoch_{settings['epochs']:03d}.pt"
        metrics_file = folder / "metrics.json"
        reuse = stamp.is_file() and last.is_file() and metrics_file.is_file()
        if reuse and json.loads(stamp.read_text()) == wanted:
            self.log.append(f"reused checkpoints of {key} from {folder}")
        else:
            for old in folder.glob("epoch_*.pt"):
                old.unlink()
            train(spec.name, spec.data, out=folder, random_state=0, progress=self.progress, **settings)
            stamp.write_text(json.dumps(wanted, indent=2) + "\n")
            self.log.append(f"trained {key} ({settings['epochs']} epochs) into {folder}")
        self._metrics[key] = json.loads(metrics_file.read_text())
        return models.load(last).eval()

    def data(self, key: str) -> dict[str, torch.Tensor]:
        """The held-out test data of model ``key`` (``x_test``, ``y_test`` and masks for shapes)."""
        from areacam.models.train import load_data

        s = self.settings(key)
        return load_data(MODELS[key].data, s["size"], s.get("n_train"), s.get("n_test"))

    def bar(self, stage: str, total: int) -> AbstractContextManager[Any]:
        """A progress bar for one stage."""
        return progress_bar(total, stage, enabled=self.progress, leave=True)


def sample_per_class(labels: torch.Tensor, count: int) -> list[int]:
    """Indices of the first sample of each of the first ``count`` classes present in ``labels``."""
    picks: list[int] = []
    for cls in sorted(set(labels.tolist())):
        picks.append(int((labels == cls).nonzero()[0]))
        if len(picks) == count:
            break
    return picks


def label_colors(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(H, W)`` integer labels as ``(H, W, 3)`` uint8 colours (0 black, 1 red, 2 green, 3 blue...)."""
    palette = np.array(
        [[0, 0, 0], [230, 60, 60], [60, 200, 60], [70, 110, 255], [240, 200, 40], [200, 80, 220]], dtype=np.uint8
    )
    return palette[np.asarray(mask) % len(palette)]
