"""Command-line plumbing: build a model from ``--model``/``--weights`` and read images to a batch."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from areacam import models
from areacam._util.errors import one_line

__all__ = [
    "USER_ERRORS",
    "InputError",
    "conform_image",
    "default_size",
    "forward_error",
    "import_factory",
    "input_channels",
    "load_model",
    "positive",
    "read_array",
    "read_image",
    "read_images",
    "read_labels",
    "read_masks",
]


class InputError(ValueError):
    """Bad command-line input (model, weights, image); the message is one line."""


#: Errors that are the user's input (InputError and SpecError are ValueErrors): one line, exit status 2.
USER_ERRORS = (ValueError, TypeError, IndexError, KeyError, FileNotFoundError, ImportError)


def forward_error(err: Exception, x: torch.Tensor) -> InputError:
    """The one-line error of a model that failed on the batch ``x``."""
    return InputError(f"the model failed on inputs of shape {tuple(x.shape)}: {one_line(err)}")


def import_factory(spec: str, flag: str = "--model", form: str = "a registry name or MODULE:FACTORY") -> object:
    """The attribute ``FACTORY`` of ``MODULE`` (a dotted name or a ``.py`` file) named by ``MODULE:FACTORY``.

    ``flag`` and ``form`` name the command-line option in the errors (``--model``, ``--transform``).
    """
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise InputError(f"{flag} {spec!r}: expected {form}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise InputError(f"{flag} {spec!r}: no such file {module_name!r}")
        unique = f"_areacam_user_{abs(hash(str(path.resolve())))}"
        loader = importlib.util.spec_from_file_location(unique, path)
        if loader is None or loader.loader is None:
            raise InputError(f"{flag} {spec!r}: cannot import {module_name!r}")
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            raise InputError(f"{flag} {spec!r}: cannot import module {module_name!r} ({err})") from None
    if not hasattr(module, attr):
        raise InputError(f"{flag} {spec!r}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def _load_state(model: nn.Module, weights: str) -> None:
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:
        raise InputError(f"--weights {weights!r}: not a readable torch checkpoint ({type(err).__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"--weights {weights!r}: expected a state dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise InputError(f"--weights {weights!r} do not fit the model: {detail}") from None


def load_model(spec: str, weights: str | None = None) -> nn.Module:
    """A model in eval mode from a registry name (``vae``) or ``MODULE:FACTORY``, with ``weights``.

    For a registry name, an areacam checkpoint (``models.save``) rebuilds the model with its stored
    arguments; any other ``weights`` file must hold a state dict (or ``{"state_dict": ...}``).
    """
    if weights is not None and not Path(weights).is_file():
        raise InputError(f"--weights {weights!r}: no such file")
    registry = models
    if ":" not in spec:
        if spec not in registry.names():
            raise InputError(
                f"--model {spec!r}: not a registry name ({', '.join(registry.names())}) nor MODULE:FACTORY"
            )
        if weights is not None:
            try:
                ckpt = registry.load_checkpoint(weights)
            except Exception:
                ckpt = None
            if ckpt is not None:
                if ckpt["name"] != spec:
                    raise InputError(f"--weights {weights!r} holds a {ckpt['name']!r} model, not {spec!r}")
                return registry.load(weights).eval()
        model = registry.create(spec)
    else:
        factory = import_factory(spec)
        if not callable(factory):
            raise InputError(f"--model {spec!r}: {type(factory).__name__} object is not callable")
        model = factory()
        if not isinstance(model, nn.Module):
            raise InputError(f"--model {spec!r}: the factory returned {type(model).__name__}, not a torch.nn.Module")
    if weights is not None:
        _load_state(model, weights)
    return model.eval()


def input_channels(model: nn.Module) -> int:
    """Channels the model reads: its config's ``in_channels``/``num_channels`` (diffusers, Hugging Face),
    its ``in_channels`` attribute, else its first convolution's (1-, 2- or 3-D), else 3."""
    config = getattr(model, "config", None)  # diffusers deprecates reading config entries off the model
    for value in (getattr(config, "in_channels", None), getattr(config, "num_channels", None)):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    value = getattr(model, "in_channels", None)
    if isinstance(value, int) and value > 0:
        return value
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    return 3


def default_size(model: nn.Module) -> tuple[int, int] | None:
    """``(S, S)`` for a model with an ``input_size`` attribute, else ``None``."""
    size = getattr(model, "input_size", None)
    if isinstance(size, int) and size > 0:
        return size, size
    return None


def _to_float(img: np.ndarray, path: str) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    img = img.astype(np.float32)
    if not np.isfinite(img).all():
        raise InputError(f"--image {path!r} holds NaN or inf")
    low, high = float(img.min()), float(img.max())
    if low < 0 or high > 1:
        img = (img - low) / (high - low) if high > low else np.zeros_like(img)
    return img


def read_array(path: str) -> np.ndarray:
    """One image file as an ``(H, W)`` or ``(H, W, C)`` RGB(A)/grey array, as stored (``InputError`` if unreadable).

    PNG, JPEG, BMP, TIFF through OpenCV; ``.npy`` through NumPy (``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``
    with ``C`` in 1, 3, 4).
    """
    import cv2

    if not Path(path).is_file():
        raise InputError(f"--image {path!r}: no such file")
    if str(path).lower().endswith(".npy"):
        try:
            img = np.load(path, allow_pickle=False)
        except Exception as err:
            raise InputError(f"{path!r}: not a readable .npy file ({type(err).__name__})") from None
        if img.ndim == 3 and img.shape[0] in (1, 3, 4) and img.shape[-1] not in (1, 3, 4):
            img = img.transpose(1, 2, 0)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)) or img.size == 0:
            raise InputError(f"{path!r}: a .npy image must be (H, W), (H, W, C) or (C, H, W), got {img.shape}")
        if not (np.issubdtype(img.dtype, np.number) or img.dtype == bool):
            raise InputError(f"{path!r}: a .npy image must hold numbers, got {img.dtype}")
        return img.astype(np.float32) if img.dtype == bool else img
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise InputError(f"--image {path!r}: not a readable image (PNG, JPEG, BMP, TIFF...)")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    elif img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def conform_image(img: np.ndarray, path: str, size: tuple[int, ...] | None, channels: int) -> np.ndarray:
    """An ``(H, W[, C])`` array as ``(channels, H, W)`` float32 in ``[0, 1]``, resized to ``size`` if given."""
    import cv2

    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    elif img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    img = _to_float(img, path)
    if size is not None and tuple(img.shape[:2]) != tuple(size):
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 3 and channels == 1:
        img = (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    elif img.shape[2] == 1 and channels != 1:
        img = np.repeat(img, channels, axis=2)
    if img.shape[2] != channels:
        raise InputError(f"--image {path!r} has {img.shape[2]} channels; the model reads {channels}")
    return np.ascontiguousarray(np.clip(img, 0, 1).transpose(2, 0, 1), dtype=np.float32)


def read_image(path: str, size: tuple[int, ...] | None, channels: int) -> np.ndarray:
    """One image as ``(channels, H, W)`` float32 in ``[0, 1]``, resized to ``size`` if given."""
    return conform_image(read_array(path), path, size, channels)


def read_images(paths: list[str], size: tuple[int, ...] | None, channels: int) -> torch.Tensor:
    """``(B, channels, H, W)`` float32 batch; without ``size`` all images take the first one's size."""
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise InputError(f"--size must be two positive ints H W, got {size}")
    images = []
    for path in paths:
        img = read_image(path, size, channels)
        if size is None:
            size = tuple(img.shape[1:])
        images.append(img)
    return torch.from_numpy(np.stack(images))


def _mask_files(paths: list[str], images: list[str], size: tuple[int, int]) -> list[np.ndarray]:
    """Each ``--mask`` file as read, ``(H, W)`` or ``(H, W, channels)``, resized (nearest) to ``size``."""
    import cv2

    if len(paths) != len(images):
        raise InputError(f"--mask takes one file per --image: got {len(paths)} masks for {len(images)} images")
    arrays = []
    for path in paths:
        if not Path(path).is_file():
            raise InputError(f"--mask {path!r}: no such file")
        mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if mask is None or mask.size == 0:
            raise InputError(f"--mask {path!r}: not a readable image (PNG, BMP, TIFF...)")
        if tuple(mask.shape[:2]) != tuple(size):
            mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
        arrays.append(mask.reshape(size[0], size[1], -1))
    return arrays


def read_masks(paths: list[str], images: list[str], size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` bool masks from image files (non-zero = inside), one per image, resized to ``size``."""
    masks = []
    for mask, path, image in zip(_mask_files(paths, images, size), paths, images):
        region = mask.max(axis=2) > 0
        if not region.any():
            raise InputError(
                f"--mask {path!r} (for {image!r}) is empty at size {tuple(size)}: a mask needs "
                "at least one non-zero pixel"
            )
        masks.append(torch.from_numpy(np.ascontiguousarray(region)))
    return torch.stack(masks)


def read_labels(paths: list[str], images: list[str], size: tuple[int, int]) -> torch.Tensor:
    """``(B, H, W)`` int64 class labels from one-channel image files (pixel value = class), resized (nearest)."""
    labels = []
    for mask, path in zip(_mask_files(paths, images, size), paths):
        if not (mask == mask[..., :1]).all():
            raise InputError(f"--mask {path!r}: label images must have one channel (pixel value = class)")
        labels.append(torch.from_numpy(np.ascontiguousarray(mask[..., 0]).astype(np.int64)))
    return torch.stack(labels)


def positive(value: int, flag: str) -> int:
    """``value`` of the command-line ``flag`` when it is >= 1 (``InputError`` otherwise)."""
    if value < 1:
        raise InputError(f"{flag} must be >= 1, got {value}")
    return value
