"""Deterministic training loop for the reference models: ``train(model, data, epochs, out, random_state, ...)``.

One function trains any registered model on ``"digits"``, ``"shapes"``, ``"volumes"``, ``"signals"`` or
``"textures"`` (normal textures of ``areacam.data.anomalies``, for the autoencoders):

* ``classifier``: cross-entropy on the image labels; reports test accuracy.
* ``fcn`` / ``unet``: pixel cross-entropy on the shapes masks (4 classes: background + 3 shapes); reports
  pixel accuracy, mean pixel accuracy and mean IoU on the test images.
* ``unet3d``: voxel cross-entropy on the volumes masks (3 classes: background, sphere, cube); the same
  metrics per voxel.
* ``ae``: mean squared reconstruction error on the images; reports the test MSE.
* ``signal_ae``: mean squared reconstruction error on the clean signals (the anomalies are never seen in
  training); reports the test MSE on clean signals and, on the signals with an injected anomaly, the share
  whose largest squared error lies inside the anomaly window and the error inside / outside the window.
* ``vae`` / ``cvae`` / ``dvae`` / ``linear_vae``: pixel BCE + KL; reports the test reconstruction MSE
  (``z = mu``) and the mean-image baseline MSE.
* ``vaegan``: pixel BCE + KL + discriminator feature matching + a low-weight non-saturating adversarial
  loss for the VAE, BCE real/fake for the discriminator (own optimizer); reports the same as the VAEs plus
  the loss terms per epoch.

Optimiser: Adam with a per-step cosine learning-rate decay to 0 over the run.
Writes ``out/epoch_001.pt`` ... (loadable with :func:`areacam.models.load`) and ``out/metrics.json``. The
families' steps are in :mod:`.families`, the held-out scores in :mod:`.scores`, the data in
:mod:`.datasets`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from areacam._util.checks import check_int, check_positive
from areacam._util.io import atomic_write
from areacam._util.progress import progress_bar
from areacam.data import SHAPE_CLASSES, VOLUME_CLASSES

from . import registry
from .datasets import DATASETS, base_data, load_data
from .families import FAMILIES, Batch, Family, family_of
from .scores import held_out_scores, segmentation_scores

__all__ = [
    "DATASETS",
    "FAMILIES",
    "Batch",
    "Family",
    "defaults",
    "family_of",
    "held_out_scores",
    "load_data",
    "segmentation_scores",
    "train",
]

# Models that read other inputs than images, and the one data set each trains on.
_DATA_OF = {"unet3d": "volumes", "signal_ae": "signals"}

# Base settings per task and data set; per-model overrides below. Sizes: digits 32, shapes 64.
_BASE: dict[tuple[str, str], dict[str, Any]] = {
    ("classification", "digits"): dict(epochs=10, batch_size=64, lr=1e-3, size=32, n_train=None, n_test=None),
    ("classification", "shapes"): dict(epochs=10, batch_size=64, lr=1e-3, size=64, n_train=2000, n_test=500),
    ("segmentation", "shapes"): dict(epochs=15, batch_size=32, lr=1e-3, size=64, n_train=2000, n_test=500),
    ("generative", "digits"): dict(epochs=30, batch_size=64, lr=1e-3, size=32, n_train=None, n_test=None),
    ("generative", "shapes"): dict(epochs=20, batch_size=64, lr=1e-3, size=32, n_train=2000, n_test=500),
    ("segmentation", "volumes"): dict(epochs=6, batch_size=8, lr=3e-3, size=24, n_train=128, n_test=32),
    ("reconstruction", "digits"): dict(epochs=30, batch_size=64, lr=1e-3, size=32, n_train=None, n_test=None),
    ("reconstruction", "shapes"): dict(epochs=20, batch_size=64, lr=1e-3, size=32, n_train=2000, n_test=500),
    ("reconstruction", "signals"): dict(epochs=10, batch_size=64, lr=3e-3, size=256, n_train=1000, n_test=200),
    ("reconstruction", "textures"): dict(epochs=10, batch_size=64, lr=1e-3, size=64, n_train=1000, n_test=200),
    ("generative", "textures"): dict(epochs=10, batch_size=64, lr=1e-3, size=64, n_train=1000, n_test=200),
}
_MODEL_OVERRIDES: dict[str, dict[str, Any]] = {
    "vaegan": dict(lr=5e-4),
    "unet": dict(n_train=1000, n_test=250, epochs=10),
}
_FCN_OVERRIDES: dict[str, dict[str, Any]] = {
    "alexnet": dict(size=128, lr=5e-4),
    "vgg16": dict(size=96, lr=1e-4, n_train=1000, n_test=250),
}


def defaults(model: str, data: str, model_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Default ``epochs, batch_size, lr, size, n_train, n_test`` for ``model`` on ``data``.

    ``n_train``/``n_test`` ``None`` means the whole digits split. For ``fcn`` they depend on the backbone.
    """
    task = _task(model, data)
    cfg = dict(_BASE[(task, base_data(data))])
    cfg.update(_MODEL_OVERRIDES.get(model, {}))
    if model == "fcn":
        cfg.update(_FCN_OVERRIDES[(model_kwargs or {}).get("backbone", "alexnet")])
    return cfg


def _task(model: str, data: str) -> str:
    registry.check_name(model)
    if data not in DATASETS:
        raise ValueError(f"unknown data {data!r}; valid data sets: {', '.join(DATASETS)}")
    task = family_of(model).task
    wanted = _DATA_OF.get(model)
    if wanted is not None and data != wanted:
        raise ValueError(f"model {model!r} trains on data={wanted!r}, got {data!r}")
    if wanted is None and data in _DATA_OF.values():
        users = ", ".join(name for name, d in _DATA_OF.items() if d == data)
        raise ValueError(f"data {data!r} is for model {users}, not for the image model {model!r}")
    if task == "segmentation" and base_data(data) not in ("shapes", "volumes"):
        raise ValueError(f"model {model!r} is a segmenter and needs masks: use data='shapes', got {data!r}")
    return task


@contextmanager
def _reproducible(seed: int, threads: int | None) -> Iterator[None]:
    """Seed torch/numpy, enable deterministic algorithms, fix threads; restore all global state after."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_cudnn = torch.backends.cudnn.benchmark
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            if threads is not None:
                torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.manual_seed(seed)
            np.random.seed(seed % 2**32)
            yield
        finally:
            torch.set_num_threads(old_threads)
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
            torch.backends.cudnn.benchmark = old_cudnn
            np.random.set_state(np_state)


def _model_kwargs(model: str, data: str, size: int, d: dict[str, torch.Tensor], user: dict[str, Any]) -> dict:
    data = base_data(data)
    in_channels = int(d["x_train"].shape[1])
    family = family_of(model)
    if family.task == "classification":
        kw = dict(num_classes=10 if data == "digits" else 3, in_channels=in_channels, input_size=size)
    elif family.task == "segmentation":
        classes = SHAPE_CLASSES if data == "shapes" else VOLUME_CLASSES
        kw = dict(num_classes=1 + len(classes), in_channels=in_channels)
    elif family.task == "reconstruction":
        kw = dict(in_channels=in_channels) if data == "signals" else dict(in_channels=in_channels, input_size=size)
    else:
        kw = dict(in_channels=in_channels, input_size=size)
        if family.conditional:
            kw["num_classes"] = 10 if data == "digits" else 3
    kw.update(user)
    return kw


def train(
    model: str,
    data: str,
    epochs: int | None = None,
    out: str | os.PathLike | None = None,
    random_state: int = 0,
    batch_size: int | None = None,
    lr: float | None = None,
    size: int | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    data_seed: int = 0,
) -> dict[str, Any]:
    """Train registered ``model`` on ``data`` and return the metrics dict (also written to ``out``).

    Args:
        model: a name from :func:`models.names`.
        data: ``"digits"``, ``"shapes"`` (or ``"shapes-distractor"``), ``"volumes"`` (``unet3d``),
            ``"signals"`` (``signal_ae``) or ``"textures"`` (the image autoencoders: normal textures only).
        epochs, batch_size, lr, size, n_train, n_test: ``None`` takes :func:`defaults`.
        out: directory for ``epoch_XXX.pt`` checkpoints and ``metrics.json``; ``None`` writes nothing.
        random_state: seeds the weights init and the batch order (the run is deterministic for a fixed
            ``threads``).
        model_kwargs: extra constructor arguments (e.g. ``{"backbone": "vgg16", "head": "32s"}``).
        threads: ``torch.set_num_threads`` during the run (restored afterwards); ``None``: unchanged.
        progress: show a progress bar (stderr; needs tqdm).
        data_seed: seed of the data (split / generated shapes), independent of ``random_state``.

    Returns:
        ``{"model", "data", "config", "history": [per-epoch dicts], "final": last epoch's dict,
        "time_s", "epoch_time_s": [...], "threads"}``.
    """
    family = family_of(model)
    cfg = _config(
        model,
        data,
        model_kwargs,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        size=size,
        n_train=n_train,
        n_test=n_test,
    )
    if threads is not None:
        check_int("threads", threads)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    d = load_data(data, cfg["size"], cfg["n_train"], cfg["n_test"], random_state=data_seed)
    n = d["x_train"].shape[0]
    kw = _model_kwargs(model, data, cfg["size"], d, dict(model_kwargs or {}))
    bs = min(cfg["batch_size"], n)
    steps_per_epoch = max(1, n // bs) if n % bs == 1 else math.ceil(n / bs)

    history: list[dict[str, Any]] = []
    epoch_times: list[float] = []
    start = time.perf_counter()
    with _reproducible(random_state, threads):
        net = registry.create(model, **kw).to(device)
        optimizers = family.optimizers(net, cfg["lr"])
        schedulers = [
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=cfg["epochs"] * steps_per_epoch) for o in optimizers
        ]
        gen = torch.Generator().manual_seed(random_state)
        with progress_bar(cfg["epochs"] * steps_per_epoch, f"{model}/{data}", enabled=progress) as bar:
            for epoch in range(1, cfg["epochs"] + 1):
                t0 = time.perf_counter()
                net.train()
                perm = torch.randperm(n, generator=gen)
                sums: dict[str, float] = {}
                for step in range(steps_per_epoch):
                    idx = perm[step * bs : (step + 1) * bs] if step < steps_per_epoch - 1 else perm[step * bs :]
                    batch = Batch(
                        d["x_train"][idx].to(device),
                        d["y_train"][idx].to(device),
                        d["m_train"][idx].to(device) if "m_train" in d else None,
                    )
                    terms = family.step(net, batch, optimizers, family.forward)
                    for key, value in terms.items():
                        sums[key] = sums.get(key, 0.0) + value * batch.x.shape[0]
                    for sched in schedulers:
                        sched.step()
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{terms['loss']:.4g}")
                entry: dict[str, Any] = {"epoch": epoch}
                entry.update({f"train_{k}": v / n for k, v in sums.items()})
                entry.update(held_out_scores(net, family.task, d, device=device, forward=family.forward))
                if not all(math.isfinite(v) for v in entry.values() if isinstance(v, float)):
                    raise FloatingPointError(f"training diverged at epoch {epoch}: {entry}")
                history.append(entry)
                epoch_times.append(time.perf_counter() - t0)
                if out_dir is not None:
                    registry.save(
                        net, out_dir / f"epoch_{epoch:03d}.pt", epoch=epoch, metrics=entry, data=data, seed=random_state
                    )
        used_threads = torch.get_num_threads()
    metrics: dict[str, Any] = {
        "model": model,
        "data": data,
        "config": {
            **cfg,
            "seed": random_state,
            "data_seed": data_seed,
            "model_kwargs": kw,
            "n_train": n,
            "n_test": int(d["x_test"].shape[0]),
            "device": str(device),
            "optimizer": "adam",
            "schedule": "cosine (per step, to 0)",
        },
        "history": history,
        "final": history[-1],
        "time_s": time.perf_counter() - start,
        "epoch_time_s": epoch_times,
        "threads": used_threads,
        "torch": torch.__version__,
    }
    if out_dir is not None:
        atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def _config(model: str, data: str, model_kwargs: dict[str, Any] | None, **given: Any) -> dict[str, Any]:
    """:func:`defaults` updated by the settings given (not ``None``), each checked."""
    cfg = defaults(model, data, dict(model_kwargs or {}))
    cfg.update({key: value for key, value in given.items() if value is not None})
    for key in ("epochs", "batch_size", "size"):
        check_int(key, cfg[key])
    for key in ("n_train", "n_test"):
        if cfg[key] is not None:
            check_int(key, cfg[key])
    check_positive("lr", cfg["lr"])
    return cfg
