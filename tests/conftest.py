"""Shared fixtures: small models with random weights, seeded, in eval mode."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn


def pytest_configure(config):
    # Two threads as the machine has; OMP_NUM_THREADS (make test-portable sets 1) wins.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors run fastest on one thread (OpenMP start-up dominates); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def resnet() -> nn.Module:
    """torchvision ResNet-18 (in-place ReLUs), 10 classes, random weights."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


@pytest.fixture
def unet() -> nn.Module:
    """smp U-Net, ResNet-18 encoder, 3 classes, random weights."""
    import segmentation_models_pytorch as smp

    torch.manual_seed(0)
    return smp.Unet("resnet18", encoder_weights=None, classes=3).eval()


@pytest.fixture
def resnet64(resnet) -> nn.Module:
    """The ResNet-18 in float64: peers then give float64 references (tests/README.md, rule 2)."""
    return resnet.double()


@pytest.fixture
def unet64(unet) -> nn.Module:
    """The smp U-Net in float64."""
    return unet.double()


@pytest.fixture
def images64(images) -> torch.Tensor:
    return images.double()


class TinyAE(nn.Module):
    """A 2-stage conv autoencoder returning ``(recon, mu, logvar)`` like a VAE."""

    def __init__(self, channels: int = 3, latent: int = 4):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 8, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        self.mu = nn.Linear(16, latent)
        self.logvar = nn.Linear(16, latent)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(8, channels, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        h = self.encoder(x)
        pooled = h.mean(dim=(2, 3))
        return self.decoder(h), self.mu(pooled), self.logvar(pooled)


@pytest.fixture
def autoencoder() -> nn.Module:
    torch.manual_seed(0)
    return TinyAE().eval()


@pytest.fixture
def images() -> torch.Tensor:
    """Two random 64x64 RGB images."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 64, 64, generator=generator)
