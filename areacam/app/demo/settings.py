"""How the demo trains each reference model: ``areacam.models.train.train`` arguments, quick and full."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BOXES", "MODELS", "ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """How the demo trains one reference model (``areacam.models.train.train`` arguments), quick and full."""

    name: str
    data: str
    quick: dict[str, Any]
    full: dict[str, Any]


_CLS = dict(width=8, hidden=64)
_VAE = dict(width=16, latent_dim=8)
_TEXTURE_AE = dict(width=8, latent_dim=16)
_FCN = dict(backbone="alexnet", head="8s", head_width=64)
_UNET = dict(encoder_name="resnet18", encoder_depth=4, decoder_channels=[32, 16, 16, 8])

MODELS: dict[str, ModelSpec] = {
    "digits_classifier": ModelSpec(
        "classifier",
        "digits",
        quick=dict(epochs=3, n_train=480, n_test=100, size=32, batch_size=32, lr=3e-3, model_kwargs=_CLS),
        full=dict(epochs=6, size=32, batch_size=64, lr=2e-3, model_kwargs=dict(width=16, hidden=128)),
    ),
    "shapes_classifier": ModelSpec(
        "classifier",
        "shapes",
        quick=dict(epochs=4, n_train=1000, n_test=64, size=32, batch_size=32, lr=1e-3, model_kwargs=_CLS),
        full=dict(
            epochs=10,
            n_train=2000,
            n_test=300,
            size=64,
            batch_size=64,
            lr=1e-3,
            model_kwargs=dict(width=16, hidden=128),
        ),
    ),
    "vae": ModelSpec(
        "vae",
        "digits",
        quick=dict(epochs=4, n_train=800, n_test=64, size=32, batch_size=32, lr=3e-3, model_kwargs=_VAE),
        full=dict(epochs=10, size=32, batch_size=32, lr=2e-3, model_kwargs=dict(width=32, latent_dim=16)),
    ),
    "vaegan": ModelSpec(
        "vaegan",
        "digits",
        quick=dict(epochs=3, n_train=512, n_test=64, size=32, batch_size=32, lr=2e-3, model_kwargs=_VAE),
        full=dict(epochs=8, size=32, batch_size=32, lr=1e-3, model_kwargs=dict(width=32, latent_dim=16)),
    ),
    "fcn": ModelSpec(
        "fcn",
        "shapes",
        quick=dict(epochs=3, n_train=128, n_test=32, size=64, batch_size=16, lr=1e-3, model_kwargs=_FCN),
        full=dict(
            epochs=10,
            n_train=1000,
            n_test=200,
            size=64,
            batch_size=16,
            lr=1e-3,
            model_kwargs=dict(backbone="alexnet", head="8s", head_width=128),
        ),
    ),
    "unet": ModelSpec(
        "unet",
        "shapes",
        quick=dict(epochs=2, n_train=96, n_test=32, size=64, batch_size=16, lr=1e-3, model_kwargs=_UNET),
        full=dict(
            epochs=10,
            n_train=1000,
            n_test=200,
            size=64,
            batch_size=16,
            lr=1e-3,
            model_kwargs=dict(encoder_name="resnet18", decoder_channels=[128, 64, 32, 16, 16]),
        ),
    ),
    # Volumes and signals: small on purpose (the 3-D U-Net trains on 2 cores in tens of seconds).
    "unet3d": ModelSpec(
        "unet3d",
        "volumes",
        quick=dict(epochs=2, n_train=32, n_test=8, size=16, batch_size=8, lr=5e-3, model_kwargs=dict(width=6)),
        full=dict(epochs=4, n_train=64, n_test=16, size=24, batch_size=8, lr=5e-3, model_kwargs=dict(width=4)),
    ),
    # Anomaly localisation: an autoencoder on normal textures (areacam.data.anomalies), small on purpose.
    "texture_ae": ModelSpec(
        "ae",
        "textures",
        quick=dict(epochs=2, n_train=192, n_test=32, size=32, batch_size=32, lr=2e-3, model_kwargs=_TEXTURE_AE),
        full=dict(
            epochs=10,
            n_train=1000,
            n_test=96,
            size=32,
            batch_size=64,
            lr=2e-3,
            model_kwargs=dict(width=16, latent_dim=32),
        ),
    ),
    "signal_ae": ModelSpec(
        "signal_ae",
        "signals",
        quick=dict(epochs=4, n_train=300, n_test=60, size=256, batch_size=64, lr=3e-3, model_kwargs=dict(width=8)),
        full=dict(epochs=10, n_train=1000, n_test=200, size=256, batch_size=64, lr=3e-3, model_kwargs=dict(width=16)),
    ),
}


#: The VAE's box targets on the 32x32 digits (top, left, bottom, right), one per sample row: upper, centre,
#: lower part and the left half (the autoencoder figures and the quality table's VAE case).
BOXES = [(4, 8, 14, 24), (10, 10, 22, 22), (18, 8, 28, 24), (4, 4, 28, 16)]
