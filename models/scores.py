"""Held-out scores of a trained reference model: accuracy, segmentation IoU, reconstruction errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .families import Batch, plain_forward

__all__ = ["held_out_scores", "segmentation_scores"]


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
def held_out_scores(
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
    forward = forward or plain_forward
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
    """Test MSE on the clean signals; anomaly hit rate and error inside / outside the anomaly windows.

    Images (no anomaly windows in ``d``): the test MSE only."""
    if "a_test" not in d:
        x_te = d["x_test"]
        sq = sum(
            float(((model(x_te[i : i + batch_size].to(device))[0] - x_te[i : i + batch_size].to(device)) ** 2).sum())
            for i in range(0, x_te.shape[0], batch_size)
        )
        return {"test_mse": sq / x_te.numel()}
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
