"""How each family of reference models trains: its task, forward pass, optimisers, loss and step.

:data:`FAMILIES` holds one :class:`Family` per family; :data:`areacam.models.registry.FAMILIES` maps every
registered model name to one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import registry
from .vae import VAEGAN

__all__ = ["FAMILIES", "Batch", "Family", "family_of", "plain_forward", "vae_losses"]

VAEGAN_ADV_WEIGHT = 1.0  # adversarial term, vs a pixel BCE summed over all pixels (~100s): small
VAEGAN_FM_WEIGHT = 1.0  # discriminator feature matching, summed over features
VAEGAN_DISC_LR_SCALE = 0.5  # discriminator lr relative to lr


def vae_losses(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample-averaged pixel BCE (summed over pixels) and KL divergence to ``N(0, I)``."""
    b = x.shape[0]
    bce = F.binary_cross_entropy(recon, x, reduction="sum") / b
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / b
    return bce, kl


@dataclass(frozen=True)
class Batch:
    """One training batch: images ``x (B, C, S, S)``, labels ``y (B,)`` and, for shapes, masks ``m (B, S, S)``."""

    x: torch.Tensor
    y: torch.Tensor
    m: torch.Tensor | None = None


Forward = Callable[[nn.Module, Batch], Any]
Step = Callable[[nn.Module, Batch, list[torch.optim.Optimizer], Forward], dict[str, float]]


def plain_forward(net: nn.Module, batch: Batch) -> Any:
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
    assert isinstance(net, VAEGAN), type(net)
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
    bce, kl = vae_losses(recon, batch.x, mu, logvar)
    loss = bce + kl
    _minimise(loss, opts[0])
    return {"loss": float(loss.detach()), "bce": float(bce.detach()), "kl": float(kl.detach())}


@dataclass(frozen=True)
class Family:
    """How one family of registered models trains: its task, forward pass, optimisers and step."""

    task: str
    step: Step
    forward: Forward = plain_forward
    optimizers: Callable[[nn.Module, float], list[torch.optim.Optimizer]] = _adam
    conditional: bool = False  # the model takes the labels too (and needs num_classes)


def family_of(model: str) -> Family:
    """The :class:`Family` of registered ``model`` (through :data:`models.registry.FAMILIES`)."""
    return FAMILIES[registry.FAMILIES[registry.check_name(model)]]


def _vaegan_step(net: nn.Module, batch: Batch, opts: list, forward: Forward) -> dict[str, float]:
    """Pixel BCE + KL + discriminator feature matching + a low-weight adversarial term; then the discriminator."""
    assert isinstance(net, VAEGAN), type(net)
    opt, opt_d = opts
    xb = batch.x
    recon, mu, logvar = forward(net, batch)
    bce, kl = vae_losses(recon, xb, mu, logvar)
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
