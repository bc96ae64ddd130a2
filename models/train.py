"""Deterministic training loop for the reference models: ``train(model, data, epochs, out, seed, ...)``.

One function trains any registered model on ``"digits"``, ``"shapes"``, ``"volumes"`` or ``"signals"``:

* ``classifier``: cross-entropy on the image labels; reports test accuracy.
* ``fcn`` / ``unet``: pixel cross-entropy on the shapes masks (4 classes: background + 3 shapes); reports
  pixel accuracy, mean pixel accuracy and mean IoU on the test images.
* ``unet3d``: voxel cross-entropy on the volumes masks (3 classes: background, sphere, cube); the same
  metrics per voxel.
* ``signal_ae``: mean squared reconstruction error on the clean signals (the anomalies are never seen in
  training); reports the test MSE on clean signals and, on the signals with an injected anomaly, the share
  whose largest squared error lies inside the anomaly window and the error inside / outside the window.
* ``vae`` / ``cvae`` / ``dvae`` / ``linear_vae``: pixel BCE + KL; reports the test reconstruction MSE
  (``z = mu``) and the mean-image baseline MSE.
* ``vaegan``: pixel BCE + KL + discriminator feature matching + a low-weight non-saturating adversarial
  loss for the VAE, BCE real/fake for the discriminator (own optimizer); reports the same as the VAEs plus
  the loss terms per epoch.

Optimiser: Adam with a per-step cosine learning-rate decay to 0 over the run.
Writes ``out/epoch_001.pt`` ... (loadable with :func:`models.load`) and ``out/metrics.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from areacam.checks import check_int, check_positive
from areacam.deprecation import renamed
from areacam.progress import progress_bar

from . import registry

__all__ = ["DATASETS", "FAMILIES", "Batch", "Family", "defaults", "family_of", "load_data", "train"]

DATASETS = ("digits", "shapes", "volumes", "signals")

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
    ("reconstruction", "signals"): dict(epochs=10, batch_size=64, lr=3e-3, size=256, n_train=1000, n_test=200),
}
_MODEL_OVERRIDES: dict[str, dict[str, Any]] = {
    "vaegan": dict(lr=5e-4),
    "unet": dict(n_train=1000, n_test=250, epochs=10),
}
_FCN_OVERRIDES: dict[str, dict[str, Any]] = {
    "alexnet": dict(size=128, lr=5e-4),
    "vgg16": dict(size=96, lr=1e-4, n_train=1000, n_test=250),
}

VAEGAN_ADV_WEIGHT = 1.0  # adversarial term, vs a pixel BCE summed over all pixels (~100s): small
VAEGAN_FM_WEIGHT = 1.0  # discriminator feature matching, summed over features
VAEGAN_DISC_LR_SCALE = 0.5  # discriminator lr relative to lr


def defaults(model: str, data: str, model_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Default ``epochs, batch_size, lr, size, n_train, n_test`` for ``model`` on ``data``.

    ``n_train``/``n_test`` ``None`` means the whole digits split. For ``fcn`` they depend on the backbone.
    """
    task = _task(model, data)
    cfg = dict(_BASE[(task, data)])
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
    if task == "segmentation" and data not in ("shapes", "volumes"):
        raise ValueError(f"model {model!r} is a segmenter and needs masks: use data='shapes', got {data!r}")
    return task


@renamed(seed="random_state")
def load_data(
    data: str,
    size: int,
    n_train: int | None = None,
    n_test: int | None = None,
    random_state: int = 0,
) -> dict[str, torch.Tensor]:
    """Train/test tensors: ``x_train (N, C, S, S)``, ``y_train (N,)``, ``x_test``, ``y_test`` and, for
    shapes, ``m_train``/``m_test`` ``(N, S, S)`` masks. The data does not depend on the training seed.

    Volumes: ``x (N, 1, S, S, S)``, ``y`` the object's class, ``m (N, S, S, S)`` masks. Signals (``size`` is
    the length): ``x_train`` the clean signals (an autoencoder learns normal data only), ``x_test`` the
    test signals with their anomaly, ``clean_test`` without it, ``a_test (N, L)`` bool anomaly windows;
    ``y`` all zero.
    """
    from areacam import data as ac_data

    if data == "digits":
        x_tr, y_tr = ac_data.digits("train", size=size, random_state=random_state)
        x_te, y_te = ac_data.digits("test", size=size, random_state=random_state)
        out = dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
        if n_train is not None:
            out["x_train"], out["y_train"] = x_tr[:n_train], y_tr[:n_train]
        if n_test is not None:
            out["x_test"], out["y_test"] = x_te[:n_test], y_te[:n_test]
        return out
    if data == "shapes":
        n_train = 2000 if n_train is None else n_train
        n_test = 500 if n_test is None else n_test
        x, y, m = ac_data.shapes(n_train + n_test, size=size, random_state=random_state)
        return dict(
            x_train=x[:n_train],
            y_train=y[:n_train],
            m_train=m[:n_train],
            x_test=x[n_train:],
            y_test=y[n_train:],
            m_test=m[n_train:],
        )
    if data == "volumes":
        n_train = 128 if n_train is None else n_train
        n_test = 32 if n_test is None else n_test
        x, y, m = ac_data.volumes(n_train + n_test, size=size, random_state=random_state)
        return dict(
            x_train=x[:n_train], y_train=y[:n_train], m_train=m[:n_train],
            x_test=x[n_train:], y_test=y[n_train:], m_test=m[n_train:],
        )
    if data == "signals":
        n_train = 1000 if n_train is None else n_train
        n_test = 200 if n_test is None else n_test
        x, clean, a = ac_data.signals(n_train + n_test, length=size, random_state=random_state)
        zeros = torch.zeros(n_train + n_test, dtype=torch.int64)
        return dict(
            x_train=clean[:n_train], y_train=zeros[:n_train],
            x_test=x[n_train:], y_test=zeros[n_train:], clean_test=clean[n_train:], a_test=a[n_train:],
        )
    raise ValueError(f"unknown data {data!r}; valid data sets: {', '.join(DATASETS)}")


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


def _vae_losses(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample-averaged pixel BCE (summed over pixels) and KL divergence to ``N(0, I)``."""
    b = x.shape[0]
    bce = F.binary_cross_entropy(recon, x, reduction="sum") / b
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / b
    return bce, kl


def _confusion(pred: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    idx = target.reshape(-1) * k + pred.reshape(-1)
    return torch.bincount(idx, minlength=k * k).reshape(k, k)


def segmentation_scores(confusion: torch.Tensor) -> dict[str, Any]:
    """Pixel accuracy, mean pixel accuracy (mean per-class recall) and mean IoU from a ``(K, K)``
    confusion matrix (rows: truth, columns: prediction); classes absent from both are skipped."""
    conf = confusion.double()
    tp = conf.diag()
    gt = conf.sum(1)
    pr = conf.sum(0)
    present = gt > 0
    union = gt + pr - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.zeros_like(tp))
    acc = torch.where(present, tp / gt.clamp_min(1), torch.zeros_like(tp))
    return {
        "pixel_accuracy": float(tp.sum() / conf.sum()),
        "mean_pixel_accuracy": float(acc[present].mean()),
        "mean_iou": float(iou[union > 0].mean()),
        "class_iou": [float(v) for v in iou],
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: str,
    d: dict[str, torch.Tensor],
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    forward: Callable[[nn.Module, Batch], Any] | None = None,
) -> dict[str, Any]:
    """Test metrics of ``model`` (eval mode) on ``d["x_test"]`` (see the module docstring).

    ``forward(model, batch)`` runs a generative model (default: ``model(batch.x)``).
    """
    forward = forward or _plain_forward
    was_training = model.training
    model.eval()
    x_te, y_te = d["x_test"], d["y_test"]
    n = x_te.shape[0]
    try:
        if task == "classification":
            correct, loss = 0, 0.0
            for i in range(0, n, batch_size):
                xb, yb = x_te[i : i + batch_size].to(device), y_te[i : i + batch_size].to(device)
                logits = model(xb)
                loss += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(1) == yb).sum())
            return {"test_accuracy": correct / n, "test_loss": loss / n}
        if task == "segmentation":
            m_te = d["m_test"]
            conf: torch.Tensor | None = None
            loss = 0.0
            for i in range(0, n, batch_size):
                xb, mb = x_te[i : i + batch_size].to(device), m_te[i : i + batch_size].to(device)
                logits = model(xb)
                k = logits.shape[1]  # the model's classes: every predicted pixel is counted
                loss += float(F.cross_entropy(logits, mb, reduction="sum")) / mb[0].numel()
                part = _confusion(logits.argmax(1).cpu(), mb.cpu(), k)
                conf = part if conf is None else conf + part
            assert conf is not None
            return {"test_loss": loss / n, **segmentation_scores(conf)}
        if task == "reconstruction":
            return _reconstruction_scores(model, d, batch_size, device)
        # generative
        mean_image = d["x_train"].mean(0, keepdim=True)
        sq, base, kl_sum = 0.0, 0.0, 0.0
        for i in range(0, n, batch_size):
            xb = x_te[i : i + batch_size].to(device)
            recon, mu, logvar = forward(model, Batch(xb, y_te[i : i + batch_size].to(device)))
            sq += float(((recon - xb) ** 2).sum())
            base += float(((mean_image.to(device) - xb) ** 2).sum())
            kl_sum += float(-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()))
        pixels = x_te[0].numel() * n
        return {"test_mse": sq / pixels, "baseline_mse": base / pixels, "test_kl": kl_sum / n}
    finally:
        model.train(was_training)


def _reconstruction_scores(
    model: nn.Module, d: dict[str, torch.Tensor], batch_size: int, device: str | torch.device
) -> dict[str, Any]:
    """Test MSE on the clean signals; anomaly hit rate and error inside / outside the anomaly windows."""
    sq_clean, inside, outside, hits = 0.0, 0.0, 0.0, 0
    x_te, clean, windows = d["x_test"], d["clean_test"], d["a_test"]
    n = x_te.shape[0]
    for i in range(0, n, batch_size):
        part = slice(i, i + batch_size)
        xb, cb, wb = x_te[part].to(device), clean[part].to(device), windows[part].to(device)
        sq_clean += float(((model(cb)[0] - cb) ** 2).sum())
        error = ((model(xb)[0] - xb) ** 2).sum(1)  # (B, L)
        inside += float(error[wb].sum())
        outside += float(error[~wb].sum())
        hits += int(wb.gather(1, error.argmax(1, keepdim=True)).sum())
    count_in = int(windows.sum())
    return {
        "test_mse": sq_clean / clean.numel(),
        "anomaly_hit_rate": hits / n,
        "mse_inside_anomaly": inside / (count_in * x_te.shape[1]),
        "mse_outside_anomaly": outside / ((windows.numel() - count_in) * x_te.shape[1]),
    }


def _model_kwargs(model: str, data: str, size: int, d: dict[str, torch.Tensor], user: dict[str, Any]) -> dict:
    in_channels = int(d["x_train"].shape[1])
    family = family_of(model)
    if family.task == "classification":
        kw = dict(num_classes=10 if data == "digits" else 3, in_channels=in_channels, input_size=size)
    elif family.task == "segmentation":
        from areacam.data import SHAPE_CLASSES, VOLUME_CLASSES

        classes = SHAPE_CLASSES if data == "shapes" else VOLUME_CLASSES
        kw = dict(num_classes=1 + len(classes), in_channels=in_channels)
    elif family.task == "reconstruction":
        kw = dict(in_channels=in_channels)
    else:
        kw = dict(in_channels=in_channels, input_size=size)
        if family.conditional:
            kw["num_classes"] = 10 if data == "digits" else 3
    kw.update(user)
    return kw


@renamed(seed="random_state")
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
        data: ``"digits"``, ``"shapes"``, ``"volumes"`` (``unet3d``) or ``"signals"`` (``signal_ae``).
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
    cfg = _config(model, data, model_kwargs, epochs=epochs, batch_size=batch_size, lr=lr, size=size,
                  n_train=n_train, n_test=n_test)
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
                    batch = Batch(d["x_train"][idx].to(device), d["y_train"][idx].to(device),
                                  d["m_train"][idx].to(device) if "m_train" in d else None)
                    terms = family.step(net, batch, optimizers, family.forward)
                    for key, value in terms.items():
                        sums[key] = sums.get(key, 0.0) + value * batch.x.shape[0]
                    for sched in schedulers:
                        sched.step()
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{terms['loss']:.4g}")
                entry: dict[str, Any] = {"epoch": epoch}
                entry.update({f"train_{k}": v / n for k, v in sums.items()})
                entry.update(evaluate(net, family.task, d, device=device, forward=family.forward))
                if not all(math.isfinite(v) for v in entry.values() if isinstance(v, float)):
                    raise FloatingPointError(f"training diverged at epoch {epoch}: {entry}")
                history.append(entry)
                epoch_times.append(time.perf_counter() - t0)
                if out_dir is not None:
                    registry.save(net, out_dir / f"epoch_{epoch:03d}.pt", epoch=epoch, metrics=entry, data=data,
                                  seed=random_state)
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
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
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


# ------------------------------------------------------------------------------------------ families


@dataclass(frozen=True)
class Batch:
    """One training batch: images ``x (B, C, S, S)``, labels ``y (B,)`` and, for shapes, masks ``m (B, S, S)``."""

    x: torch.Tensor
    y: torch.Tensor
    m: torch.Tensor | None = None


Forward = Callable[[nn.Module, Batch], Any]
Step = Callable[[nn.Module, Batch, list[torch.optim.Optimizer], Forward], dict[str, float]]


def _plain_forward(net: nn.Module, batch: Batch) -> Any:
    return net(batch.x)


def _conditional_forward(net: nn.Module, batch: Batch) -> Any:
    return net(batch.x, batch.y)


def _minimise(loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _adam(net: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    params = [p for name, p in net.named_parameters() if not name.startswith("discriminator.")]
    return [torch.optim.Adam(params, lr=lr)]


def _adam_with_discriminator(net: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    disc = torch.optim.Adam(net.discriminator.parameters(), lr=lr * VAEGAN_DISC_LR_SCALE, betas=(0.5, 0.999))
    return [*_adam(net, lr), disc]


def _classification_step(net: nn.Module, batch: Batch, opts: list, forward: Forward) -> dict[str, float]:
    """Cross-entropy on the image labels."""
    loss = F.cross_entropy(forward(net, batch), batch.y)
    _minimise(loss, opts[0])
    return {"loss": float(loss.detach())}


def _segmentation_step(net: nn.Module, batch: Batch, opts: list, forward: Forward) -> dict[str, float]:
    """Pixel cross-entropy on the masks."""
    if batch.m is None:
        raise ValueError("a segmenter trains on masks: use data='shapes'")
    loss = F.cross_entropy(forward(net, batch), batch.m)
    _minimise(loss, opts[0])
    return {"loss": float(loss.detach())}


def _reconstruction_step(net: nn.Module, batch: Batch, opts: list, forward: Forward) -> dict[str, float]:
    """Mean squared error of the reconstruction (element 0 of the output) against the input."""
    loss = F.mse_loss(forward(net, batch)[0], batch.x)
    _minimise(loss, opts[0])
    return {"loss": float(loss.detach())}


def _vae_step(net: nn.Module, batch: Batch, opts: list, forward: Forward) -> dict[str, float]:
    """Pixel BCE + KL."""
    recon, mu, logvar = forward(net, batch)
    bce, kl = _vae_losses(recon, batch.x, mu, logvar)
    loss = bce + kl
    _minimise(loss, opts[0])
    return {"loss": float(loss.detach()), "bce": float(bce.detach()), "kl": float(kl.detach())}


@dataclass(frozen=True)
class Family:
    """How one family of registered models trains: its task, forward pass, optimisers and step."""

    task: str
    step: Step
    forward: Forward = _plain_forward
    optimizers: Callable[[nn.Module, float], list[torch.optim.Optimizer]] = _adam
    conditional: bool = False  # the model takes the labels too (and needs num_classes)


def family_of(model: str) -> Family:
    """The :class:`Family` of registered ``model`` (through :data:`models.registry.FAMILIES`)."""
    return FAMILIES[registry.FAMILIES[registry.check_name(model)]]


def _vaegan_step(net: nn.Module, batch: Batch, opts: list, forward: Forward) -> dict[str, float]:
    """Pixel BCE + KL + discriminator feature matching + a low-weight adversarial term; then the discriminator."""
    opt, opt_d = opts
    xb = batch.x
    recon, mu, logvar = forward(net, batch)
    bce, kl = _vae_losses(recon, xb, mu, logvar)
    disc = net.discriminator
    b = xb.shape[0]
    x_prior = net.decoder(torch.randn_like(mu))
    # Discriminator: real vs reconstructions and prior samples (both detached).
    d_real, _ = disc(xb)
    d_rec, _ = disc(recon.detach())
    d_pri, _ = disc(x_prior.detach())
    ones, zeros = torch.ones(b, device=xb.device), torch.zeros(b, device=xb.device)
    loss_d = F.binary_cross_entropy_with_logits(d_real, ones) + 0.5 * (
        F.binary_cross_entropy_with_logits(d_rec, zeros) + F.binary_cross_entropy_with_logits(d_pri, zeros)
    )
    _minimise(loss_d, opt_d)
    # Encoder + decoder: pixel BCE + KL + feature matching + low-weight adversarial term.
    for p in disc.parameters():
        p.requires_grad_(False)
    try:
        _, f_real = disc(xb)
        g_rec, f_rec = disc(recon)
        g_pri, _ = disc(x_prior)
        fm = F.mse_loss(f_rec, f_real.detach(), reduction="sum") / b
        adv = 0.5 * (F.binary_cross_entropy_with_logits(g_rec, ones) + F.binary_cross_entropy_with_logits(g_pri, ones))
        loss = bce + kl + VAEGAN_FM_WEIGHT * fm + VAEGAN_ADV_WEIGHT * adv
        _minimise(loss, opt)
    finally:
        for p in disc.parameters():
            p.requires_grad_(True)
    return {
        "loss": float(loss.detach()),
        "bce": float(bce.detach()),
        "kl": float(kl.detach()),
        "feature_matching": float(fm.detach()),
        "adversarial": float(adv.detach()),
        "disc": float(loss_d.detach()),
        "d_real": float(torch.sigmoid(d_real.detach()).mean()),
        "d_fake": float(torch.sigmoid(d_rec.detach()).mean()),
    }


#: Training recipe per family; :data:`models.registry.FAMILIES` maps each model name to one.
FAMILIES: dict[str, Family] = {
    "classifier": Family("classification", _classification_step),
    "segmenter": Family("segmentation", _segmentation_step),
    "vae": Family("generative", _vae_step),
    "cvae": Family("generative", _vae_step, forward=_conditional_forward, conditional=True),
    "vaegan": Family("generative", _vaegan_step, optimizers=_adam_with_discriminator),
    "autoencoder": Family("reconstruction", _reconstruction_step),
}
