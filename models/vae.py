"""Variational autoencoders: VAE, CVAE, DVAE, LinearVAE and VAEGAN.

Every model's ``forward(x)`` returns ``(recon, mu, logvar)``:

* ``recon``: ``(B, C, S, S)`` reconstruction in ``[0, 1]`` (sigmoid output),
* ``mu``, ``logvar``: ``(B, D)`` parameters of the Gaussian posterior ``q(z | x)``.

In train mode ``z = mu + exp(logvar / 2) * eps`` is sampled; in eval mode ``z = mu`` (deterministic),
which is what the explainers see (they run the model in eval mode). Targets from :mod:`areacam`:
``Latent(i)`` reads ``mu[:, i]``; ``ReconstructionError()`` and ``Area(...)`` read ``recon``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from areacam._util.checks import check_int

__all__ = ["CVAE", "DVAE", "VAE", "VAEGAN", "ConvDecoder", "ConvEncoder", "Discriminator", "LinearVAE"]


def _check_size(input_size: int, factor: int = 8) -> None:
    check_int("input_size", input_size)
    if input_size % factor != 0:
        raise ValueError(
            f"input_size must be a positive multiple of {factor} (three stride-2 convolutions), got {input_size}"
        )


def _check_input(model: nn.Module, x: torch.Tensor, in_channels: int, input_size: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{type(model).__name__} expects a tensor, got {type(x).__name__}")
    expected = (in_channels, input_size, input_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"{type(model).__name__} was built for inputs of shape (B, {expected[0]}, {expected[1]}, "
            f"{expected[2]}) (in_channels={in_channels}, input_size={input_size}), got {tuple(x.shape)}"
        )


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, sample: bool) -> torch.Tensor:
    """``(B, D), (B, D) -> (B, D)``: ``mu + std * eps`` when ``sample`` else ``mu``."""
    if not sample:
        return mu
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class ConvEncoder(nn.Module):
    """Three stride-2 4x4 convolutions then two linear heads.

    Submodules: ``conv1, relu1, conv2, relu2, conv3, relu3, flatten, fc_mu, fc_logvar``.
    ``(B, C, S, S) [, cond (B, E)] -> mu, logvar`` each ``(B, D)``; ``conv3``/``relu3`` are ``S/8`` wide.
    """

    def __init__(self, in_channels: int, input_size: int, latent_dim: int, width: int, cond_dim: int = 0) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.conv1 = nn.Conv2d(in_channels, c1, 4, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(c2, c3, 4, stride=2, padding=1)
        self.relu3 = nn.ReLU()
        self.flatten = nn.Flatten()
        features = c3 * (input_size // 8) ** 2 + cond_dim
        self.fc_mu = nn.Linear(features, latent_dim)
        self.fc_logvar = nn.Linear(features, latent_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.relu1(self.conv1(x))
        h = self.relu2(self.conv2(h))
        h = self.flatten(self.relu3(self.conv3(h)))
        if cond is not None:
            h = torch.cat([h, cond], dim=1)
        return self.fc_mu(h), self.fc_logvar(h)


class ConvDecoder(nn.Module):
    """A linear layer then three stride-2 4x4 transposed convolutions and a sigmoid.

    Submodules: ``fc, relu0, unflatten, deconv1, relu1, deconv2, relu2, deconv3, sigmoid``.
    ``(B, D) [+ cond (B, E)] -> (B, C, S, S)`` in ``[0, 1]``; ``deconv1`` is ``S/4`` wide, ``deconv2``
    ``S/2``.
    """

    def __init__(self, out_channels: int, input_size: int, latent_dim: int, width: int, cond_dim: int = 0) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        side = input_size // 8
        self.fc = nn.Linear(latent_dim + cond_dim, c3 * side * side)
        self.relu0 = nn.ReLU()
        self.unflatten = nn.Unflatten(1, (c3, side, side))
        self.deconv1 = nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.deconv2 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.deconv3 = nn.ConvTranspose2d(c1, out_channels, 4, stride=2, padding=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is not None:
            z = torch.cat([z, cond], dim=1)
        h = self.unflatten(self.relu0(self.fc(z)))
        h = self.relu1(self.deconv1(h))
        h = self.relu2(self.deconv2(h))
        return self.sigmoid(self.deconv3(h))


class VAE(nn.Module):
    """Convolutional VAE.

    Layers: ``encoder.conv1..conv3`` (``encoder.relu3`` / ``encoder.conv3`` is the usual CAM layer, ``S/8``
    wide), ``encoder.fc_mu``, ``encoder.fc_logvar``, ``decoder.fc``, ``decoder.deconv1..deconv3``
    (``decoder.deconv1``: ``S/4`` wide, ``decoder.deconv2``: ``S/2`` wide).

    Args:
        in_channels: image channels ``C``.
        input_size: side ``S`` (multiple of 8).
        latent_dim: ``D``.
        width: channels of the first convolution (then ``2x``, ``4x``).

    Shapes:
        ``forward``: ``(B, C, S, S)`` -> ``(recon (B, C, S, S), mu (B, D), logvar (B, D))``.
    """

    registry_name = "vae"

    def __init__(self, in_channels: int = 1, input_size: int = 32, latent_dim: int = 16, width: int = 32):
        super().__init__()
        check_int("in_channels", in_channels)
        _check_size(input_size)
        check_int("latent_dim", latent_dim)
        check_int("width", width)
        self.areacam_spec: dict[str, Any] = {
            "name": self.registry_name,
            "kwargs": dict(in_channels=in_channels, input_size=input_size, latent_dim=latent_dim, width=width),
        }
        self.in_channels = in_channels
        self.input_size = input_size
        self.latent_dim = latent_dim
        self.encoder = ConvEncoder(in_channels, input_size, latent_dim, width)
        self.decoder = ConvDecoder(in_channels, input_size, latent_dim, width)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, S, S) -> (mu (B, D), logvar (B, D))``."""
        _check_input(self, x, self.in_channels, self.input_size)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D) -> (B, C, S, S)`` in ``[0, 1]``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, self.training)
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` draws from the prior: ``(n, C, S, S)``."""
        check_int("n", n)
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.decode(z)


class AE(VAE):
    """Plain convolutional autoencoder: the :class:`VAE`'s encoder and decoder with a deterministic code.

    Same layers and arguments as :class:`VAE` (``encoder.fc_logvar`` exists but is unused), trained
    on the mean squared reconstruction error, no KL term.

    Shapes:
        ``forward``: ``(B, C, S, S)`` -> ``(recon (B, C, S, S), code (B, D))``; ``ac.Latent(i)`` reads
        the code.
    """

    registry_name = "ae"

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]  # (recon, code): an AE has no logvar
        code, _ = self.encode(x)
        return self.decode(code), code


class DVAE(VAE):
    """Denoising VAE: in train mode the input is corrupted with Gaussian noise before encoding.

    Train against the *clean* input: ``recon, mu, logvar = model(x)``, ``loss(recon, x)``. In eval mode
    no noise is added, so explanations are deterministic. Same layers and shapes as :class:`VAE`.

    Args:
        noise_std: standard deviation of the additive noise (train mode only); the noisy input is clamped
            to ``[0, 1]``.
    """

    registry_name = "dvae"

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 32,
        latent_dim: int = 16,
        width: int = 32,
        noise_std: float = 0.2,
    ) -> None:
        super().__init__(in_channels, input_size, latent_dim, width)
        if not noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.noise_std = float(noise_std)
        self.areacam_spec["kwargs"]["noise_std"] = self.noise_std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.training and self.noise_std > 0:
            x = (x + self.noise_std * torch.randn_like(x)).clamp(0.0, 1.0)
        return super().forward(x)


class CVAE(VAE):
    """Class-conditional VAE: a label embedding is appended to the encoder features and to ``z``.

    ``forward(x, y=None)``: ``y`` is an int (same label for the batch) or a ``(B,)`` integer tensor. When
    ``y`` is ``None`` the model uses a learned *unknown label* embedding (index ``num_classes``), trained
    with label dropout (``label_dropout``): ``model(x)`` is the unconditional model. An explainer reaches
    the conditioned model through the call, as any model with extra arguments:
    ``ac.GradCAM(cvae, "encoder.relu2")(x, ac.ReconstructionError(), forward_args=(labels,))``, with
    ``labels`` a ``(B,)`` tensor that follows each sample through every perturbation.

    Layers as :class:`VAE`, plus ``label_embedding`` (``nn.Embedding(num_classes + 1, embed_dim)``).

    Shapes:
        ``forward``: ``(B, C, S, S)`` [, ``y``] -> ``(recon (B, C, S, S), mu (B, D), logvar (B, D))``.
    """

    registry_name = "cvae"

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 32,
        latent_dim: int = 16,
        width: int = 32,
        num_classes: int = 10,
        embed_dim: int = 16,
        label_dropout: float = 0.2,
    ) -> None:
        super().__init__(in_channels, input_size, latent_dim, width)
        check_int("num_classes", num_classes)
        check_int("embed_dim", embed_dim)
        if not 0.0 <= label_dropout <= 1.0:
            raise ValueError(f"label_dropout must be in [0, 1], got {label_dropout!r}")
        self.areacam_spec["kwargs"].update(num_classes=num_classes, embed_dim=embed_dim, label_dropout=label_dropout)
        self.num_classes = num_classes
        self.label_dropout = float(label_dropout)
        self.label_embedding = nn.Embedding(num_classes + 1, embed_dim)
        self.encoder = ConvEncoder(in_channels, input_size, latent_dim, width, cond_dim=embed_dim)
        self.decoder = ConvDecoder(in_channels, input_size, latent_dim, width, cond_dim=embed_dim)

    def _labels(self, y: int | torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:
            return torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        if isinstance(y, bool) or not isinstance(y, (int, torch.Tensor)):
            raise TypeError(f"y must be None, an int or a (B,) integer tensor, got {type(y).__name__}")
        if isinstance(y, int):
            y = torch.full((batch,), y, dtype=torch.long, device=device)
        if y.dim() != 1 or y.shape[0] != batch or y.is_floating_point():
            raise ValueError(f"y must be a ({batch},) integer tensor, got {tuple(y.shape)} {y.dtype}")
        y = y.to(device=device, dtype=torch.long)
        if bool(((y < 0) | (y > self.num_classes)).any()):
            raise ValueError(
                f"labels must be in [0, {self.num_classes - 1}] (or {self.num_classes} = unknown), got {y.tolist()}"
            )
        return y

    def encode(self, x: torch.Tensor, y: int | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        _check_input(self, x, self.in_channels, self.input_size)
        cond = self.label_embedding(self._labels(y, x.shape[0], x.device))
        return self.encoder(x, cond)

    def decode(self, z: torch.Tensor, y: int | torch.Tensor | None = None) -> torch.Tensor:
        cond = self.label_embedding(self._labels(y, z.shape[0], z.device))
        return self.decoder(z, cond)

    def forward(
        self, x: torch.Tensor, y: int | torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        labels = self._labels(y, x.shape[0], x.device)
        if self.training and self.label_dropout > 0:
            drop = torch.rand(labels.shape, device=labels.device) < self.label_dropout
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        _check_input(self, x, self.in_channels, self.input_size)
        cond = self.label_embedding(labels)
        mu, logvar = self.encoder(x, cond)
        z = reparameterize(mu, logvar, self.training)
        return self.decoder(z, cond), mu, logvar

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, y: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Decode ``n`` prior draws conditioned on ``y``: ``(n, C, S, S)``."""
        check_int("n", n)
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return self.decode(z, y)


class LinearVAE(nn.Module):
    """MLP VAE on flattened images.

    Layers: ``encoder.flatten, encoder.fc1, encoder.relu1, encoder.fc2, encoder.relu2, encoder.fc_mu,
    encoder.fc_logvar``, ``decoder.fc1, decoder.relu1, decoder.fc2, decoder.relu2, decoder.fc3,
    decoder.sigmoid, decoder.unflatten``. There is no spatial hidden layer: the only layer with a
    ``(B, C, S, S)`` output is ``decoder.unflatten`` (the reconstruction itself), usable with Grad-CAM and
    reconstruction/area targets; use input-gradient methods (Saliency, GuidedBackprop) for latent targets.

    Shapes:
        ``forward``: ``(B, C, S, S)`` -> ``(recon (B, C, S, S), mu (B, D), logvar (B, D))``.
    """

    def __init__(self, in_channels: int = 1, input_size: int = 32, latent_dim: int = 16, hidden: int = 256) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("input_size", input_size)
        check_int("latent_dim", latent_dim)
        check_int("hidden", hidden)
        self.areacam_spec = {
            "name": "linear_vae",
            "kwargs": dict(in_channels=in_channels, input_size=input_size, latent_dim=latent_dim, hidden=hidden),
        }
        self.in_channels = in_channels
        self.input_size = input_size
        self.latent_dim = latent_dim
        pixels = in_channels * input_size * input_size
        self.encoder = nn.ModuleDict(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(pixels, hidden),
                relu1=nn.ReLU(),
                fc2=nn.Linear(hidden, hidden),
                relu2=nn.ReLU(),
                fc_mu=nn.Linear(hidden, latent_dim),
                fc_logvar=nn.Linear(hidden, latent_dim),
            )
        )
        self.decoder = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(latent_dim, hidden),
                relu1=nn.ReLU(),
                fc2=nn.Linear(hidden, hidden),
                relu2=nn.ReLU(),
                fc3=nn.Linear(hidden, pixels),
                sigmoid=nn.Sigmoid(),
                unflatten=nn.Unflatten(1, (in_channels, input_size, input_size)),
            )
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, S, S) -> (mu (B, D), logvar (B, D))``."""
        _check_input(self, x, self.in_channels, self.input_size)
        e = self.encoder
        h = e["relu2"](e["fc2"](e["relu1"](e["fc1"](e["flatten"](x)))))
        return e["fc_mu"](h), e["fc_logvar"](h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(B, D) -> (B, C, S, S)`` in ``[0, 1]``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar, self.training)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode ``n`` draws from the prior: ``(n, C, S, S)``."""
        check_int("n", n)
        device = next(self.parameters()).device
        return self.decode(torch.randn(n, self.latent_dim, generator=generator).to(device))


class Discriminator(nn.Module):
    """Convolutional real/fake critic.

    Submodules: ``conv1, act1, conv2, act2, conv3, act3, flatten, fc``. ``forward(x)`` returns
    ``(logits (B,), features (B, F))`` where ``features`` is the flattened ``act3`` output (used for
    feature matching).
    """

    def __init__(self, in_channels: int, input_size: int, width: int) -> None:
        super().__init__()
        c1, c2, c3 = width, 2 * width, 4 * width
        self.conv1 = nn.Conv2d(in_channels, c1, 4, stride=2, padding=1)
        self.act1 = nn.LeakyReLU(0.2)
        self.conv2 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)
        self.act2 = nn.LeakyReLU(0.2)
        self.conv3 = nn.Conv2d(c2, c3, 4, stride=2, padding=1)
        self.act3 = nn.LeakyReLU(0.2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3 * (input_size // 8) ** 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.act1(self.conv1(x))
        h = self.act2(self.conv2(h))
        f = self.flatten(self.act3(self.conv3(h)))
        return self.fc(f).squeeze(1), f


class VAEGAN(VAE):
    """VAE-GAN (Larsen et al. 2016): a convolutional VAE plus a discriminator.

    Submodules: ``encoder`` (:class:`ConvEncoder`), ``decoder`` (:class:`ConvDecoder`), ``discriminator``
    (:class:`Discriminator`). ``forward(x)`` has the :class:`VAE` contract ``(recon, mu, logvar)`` and does
    not run the discriminator; ``discriminate(x)`` returns ``(B,)`` real/fake logits. Usual CAM layers:
    ``encoder.conv3`` / ``encoder.relu3`` (``S/8`` wide), ``decoder.deconv1`` / ``decoder.deconv2``.

    Shapes:
        ``forward``: ``(B, C, S, S)`` -> ``(recon (B, C, S, S), mu (B, D), logvar (B, D))``.
        ``discriminate``: ``(B, C, S, S)`` -> ``(B,)`` logits.
    """

    registry_name = "vaegan"

    def __init__(
        self,
        in_channels: int = 1,
        input_size: int = 32,
        latent_dim: int = 16,
        width: int = 32,
        disc_width: int = 16,
    ) -> None:
        super().__init__(in_channels, input_size, latent_dim, width)
        check_int("disc_width", disc_width)
        self.areacam_spec["kwargs"]["disc_width"] = disc_width
        self.discriminator = Discriminator(in_channels, input_size, disc_width)

    def discriminate(self, x: torch.Tensor, return_features: bool = False):
        """``(B, C, S, S) -> (B,)`` logits (``> 0``: real); with ``return_features`` also ``(B, F)``."""
        _check_input(self, x, self.in_channels, self.input_size)
        logits, features = self.discriminator(x)
        return (logits, features) if return_features else logits
