"""Shared demo plumbing: the run context, model training with reusable checkpoints, figure saving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["MODELS", "Context", "Figure", "ModelSpec", "StageSkipped", "sample_per_class"]

# Use-case groups of the report, in page order.
GROUPS = {
    "autoencoder": "Autoencoder reconstruction",
    "segmentation": "Segmentation debugging",
    "classifier": "Classifier analysis",
}


class StageSkipped(RuntimeError):
    """A stage cannot run here (e.g. an optional module is missing); the message says why."""


@dataclass(frozen=True)
class Figure:
    """One written figure: file name under ``figures/``, report group, title and caption."""

    file: str
    group: str
    title: str
    caption: str


@dataclass(frozen=True)
class ModelSpec:
    """How the demo trains one reference model (``models.train.train`` arguments), quick and full."""

    name: str
    data: str
    quick: dict[str, Any]
    full: dict[str, Any]


_CLS = dict(width=8, hidden=64)
_VAE = dict(width=16, latent_dim=8)
_FCN = dict(backbone="alexnet", head="8s", head_width=64)
_UNET = dict(encoder_name="resnet18", encoder_depth=4, decoder_channels=[32, 16, 16, 8])

MODELS: dict[str, ModelSpec] = {
    "digits_classifier": ModelSpec(
        "classifier", "digits",
        quick=dict(epochs=3, n_train=480, n_test=100, size=32, batch_size=32, lr=3e-3, model_kwargs=_CLS),
        full=dict(epochs=6, size=32, batch_size=64, lr=2e-3, model_kwargs=dict(width=16, hidden=128)),
    ),
    "shapes_classifier": ModelSpec(
        "classifier", "shapes",
        quick=dict(epochs=4, n_train=1000, n_test=64, size=32, batch_size=32, lr=1e-3, model_kwargs=_CLS),
        full=dict(epochs=10, n_train=2000, n_test=300, size=64, batch_size=64, lr=1e-3,
                  model_kwargs=dict(width=16, hidden=128)),
    ),
    "vae": ModelSpec(
        "vae", "digits",
        quick=dict(epochs=4, n_train=800, n_test=64, size=32, batch_size=32, lr=3e-3, model_kwargs=_VAE),
        full=dict(epochs=10, size=32, batch_size=32, lr=2e-3, model_kwargs=dict(width=32, latent_dim=16)),
    ),
    "vaegan": ModelSpec(
        "vaegan", "digits",
        quick=dict(epochs=3, n_train=512, n_test=64, size=32, batch_size=32, lr=2e-3, model_kwargs=_VAE),
        full=dict(epochs=8, size=32, batch_size=32, lr=1e-3, model_kwargs=dict(width=32, latent_dim=16)),
    ),
    "fcn": ModelSpec(
        "fcn", "shapes",
        quick=dict(epochs=3, n_train=128, n_test=32, size=64, batch_size=16, lr=1e-3, model_kwargs=_FCN),
        full=dict(epochs=10, n_train=1000, n_test=200, size=64, batch_size=16, lr=1e-3,
                  model_kwargs=dict(backbone="alexnet", head="8s", head_width=128)),
    ),
    "unet": ModelSpec(
        "unet", "shapes",
        quick=dict(epochs=2, n_train=96, n_test=32, size=64, batch_size=16, lr=1e-3, model_kwargs=_UNET),
        full=dict(epochs=10, n_train=1000, n_test=200, size=64, batch_size=16, lr=1e-3,
                  model_kwargs=dict(encoder_name="resnet18", decoder_channels=[128, 64, 32, 16, 16])),
    ),
}


@dataclass
class Context:
    """Everything a stage needs: where to write, quick or full, and trained models (cached)."""

    out: Path
    quick: bool = False
    progress: bool = True
    log: list[str] = field(default_factory=list)
    _models: dict[str, nn.Module] = field(default_factory=dict)
    _metrics: dict[str, dict] = field(default_factory=dict)

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
        import models

        self.model(key)
        folder = self.checkpoint_dir(key)
        return [(int(p.stem.split("_")[1]), models.load(p)) for p in sorted(folder.glob("epoch_*.pt"))]

    def metrics(self, key: str) -> dict:
        """The training metrics of model ``key`` (``metrics.json``)."""
        self.model(key)
        return self._metrics[key]

    def _train_or_load(self, key: str) -> nn.Module:
        import models
        from models.train import train

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
            train(spec.name, spec.data, out=folder, seed=0, progress=self.progress, **settings)
            stamp.write_text(json.dumps(wanted, indent=2) + "\n")
            self.log.append(f"trained {key} ({settings['epochs']} epochs) into {folder}")
        self._metrics[key] = json.loads(metrics_file.read_text())
        return models.load(last).eval()

    def data(self, key: str) -> dict[str, torch.Tensor]:
        """The held-out test data of model ``key`` (``x_test``, ``y_test`` and masks for shapes)."""
        from models.train import load_data

        s = self.settings(key)
        return load_data(MODELS[key].data, s["size"], s.get("n_train"), s.get("n_test"))

    @contextmanager
    def bar(self, stage: str, total: int) -> Iterator[Any]:
        """A tqdm progress bar for one stage."""
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=stage, disable=not self.progress, dynamic_ncols=True, leave=True)
        try:
            yield bar
        finally:
            bar.close()


def sample_per_class(labels: torch.Tensor, count: int) -> list[int]:
    """Indices of the first sample of each of the first ``count`` classes present in ``labels``."""
    picks: list[int] = []
    for cls in sorted(set(labels.tolist())):
        picks.append(int((labels == cls).nonzero()[0]))
        if len(picks) == count:
            break
    return picks


def draw_box(
    rgb: np.ndarray, box: tuple[int, int, int, int], color: tuple[int, int, int] = (255, 40, 40)
) -> np.ndarray:
    """A copy of ``(H, W, 3)`` uint8 ``rgb`` with a 1-pixel rectangle on ``box`` (exclusive bottom/right)."""
    out = rgb.copy()
    top, left, bottom, right = box
    out[top, left:right] = color
    out[bottom - 1, left:right] = color
    out[top:bottom, left] = color
    out[top:bottom, right - 1] = color
    return out


def label_colors(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` integer labels as ``(H, W, 3)`` uint8 colours (0 black, 1 red, 2 green, 3 blue...)."""
    palette = np.array(
        [[0, 0, 0], [230, 60, 60], [60, 200, 60], [70, 110, 255], [240, 200, 40], [200, 80, 220]], dtype=np.uint8
    )
    return palette[np.asarray(mask) % len(palette)]


def panel_figure(
    rows: list[list[np.ndarray]],
    path: Path,
    col_titles: list[str] | None = None,
    row_titles: list[str] | None = None,
    cell: float = 1.7,
    titles: list[list[str]] | None = None,
) -> Path:
    """Save a grid of ``(H, W, 3)`` uint8 / ``(H, W)`` float panels as PNG; ``None`` panels stay empty."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ...viz import save_figure

    nrows, ncols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols + (0.6 if row_titles else 0), cell * nrows),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            panel = row[c] if c < len(row) else None
            if panel is not None:
                ax.imshow(panel, cmap="gray" if np.asarray(panel).ndim == 2 else None, interpolation="nearest")
            if titles and c < len(titles[r]):
                title = titles[r][c]
            else:
                title = col_titles[c] if col_titles and r == 0 and c < len(col_titles) else None
            if title:
                ax.set_title(title, fontsize=8)
            if row_titles and c == 0 and r < len(row_titles):
                ax.set_ylabel(row_titles[r], fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
