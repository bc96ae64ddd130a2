"""Model registry and checkpoints: ``create(name, **kw)``, ``names()``, ``save(model, path)``, ``load(path)``."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .classifier import Classifier
from .segmentation import FCN, unet
from .vae import AE, CVAE, DVAE, VAE, VAEGAN, LinearVAE
from .volumes import SignalAE, UNet3D

__all__ = ["FAMILIES", "TASKS", "create", "load", "load_checkpoint", "names", "save"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "classifier": Classifier,
    "ae": AE,
    "vae": VAE,
    "cvae": CVAE,
    "dvae": DVAE,
    "linear_vae": LinearVAE,
    "vaegan": VAEGAN,
    "fcn": FCN,
    "unet": unet,
    "unet3d": UNet3D,
    "signal_ae": SignalAE,
}

#: The training family of each registered model (its loss and step in :mod:`models.train`).
FAMILIES: dict[str, str] = {
    "classifier": "classifier",
    "ae": "autoencoder",
    "vae": "vae",
    "cvae": "cvae",
    "dvae": "vae",
    "linear_vae": "vae",
    "vaegan": "vaegan",
    "fcn": "segmenter",
    "unet": "segmenter",
    "unet3d": "segmenter",
    "signal_ae": "autoencoder",
}

_FAMILY_TASKS = {
    "classifier": "classification",
    "segmenter": "segmentation",
    "vae": "generative",
    "cvae": "generative",
    "vaegan": "generative",
    "autoencoder": "reconstruction",
}

#: What each registered model does: ``"classification"``, ``"segmentation"``, ``"generative"`` or
#: ``"reconstruction"`` (a plain autoencoder of images or signals).
TASKS: dict[str, str] = {name: _FAMILY_TASKS[family] for name, family in FAMILIES.items()}

CHECKPOINT_FORMAT = "areacam-model/1"


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"model name must be a str, got {type(name).__name__}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise ValueError(f"unknown model {name!r}{hint}; valid names: {', '.join(names())}")
    return name


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model with random weights: ``create("fcn", head="8s", backbone="vgg16")``.

    Raises ``ValueError`` listing the valid names for an unknown ``name`` (and, from the model, for an
    unknown backbone/head); ``TypeError`` for an unknown keyword argument.
    """
    check_name(name)
    try:
        model = _REGISTRY[name](**kwargs)
    except TypeError as err:
        raise TypeError(f"bad arguments for model {name!r}: {err}") from err
    spec = getattr(model, "areacam_spec", None)
    if spec is None or spec.get("name") != name:
        # object.__setattr__: the spec is plain data, not a parameter, buffer or submodule.
        object.__setattr__(model, "areacam_spec", {"name": name, "kwargs": dict(kwargs)})
    return model


def save(model: nn.Module, path: str | os.PathLike, **extra: Any) -> None:
    """Write a checkpoint ``{"format", "name", "kwargs", "state_dict", "extra"}`` loadable by :func:`load`.

    ``model`` must come from :func:`create` or one of this package's classes (it carries
    ``areacam_spec``). ``extra`` (e.g. ``epoch=3, metrics={...}``) must hold plain Python values.
    """
    spec = getattr(model, "areacam_spec", None)
    if not isinstance(spec, dict) or "name" not in spec:
        raise TypeError(
            f"cannot save a {type(model).__name__}: it was not built by models.create() (no areacam_spec attribute)"
        )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "name": spec["name"],
            "kwargs": dict(spec["kwargs"]),
            "state_dict": state,
            "extra": dict(extra),
        },
        os.fspath(path),
    )


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (``weights_only``: no code runs on load)."""
    ckpt = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not an areacam model checkpoint (format {CHECKPOINT_FORMAT})")
    return ckpt


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model stored at ``path`` by :func:`save`, with its weights, in eval mode, on ``device``."""
    ckpt = load_checkpoint(path)
    model = create(ckpt["name"], **ckpt["kwargs"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval()
