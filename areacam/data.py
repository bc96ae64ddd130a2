"""Embedded data: digits, synthetic shapes with exact masks, and the photos shipped with skimage/sklearn.

Nothing here downloads anything: digits come from scikit-learn's bundled ``load_digits``, photos from the
files bundled with scikit-image and scikit-learn, shapes are generated.

* :func:`digits` -- ``(N, 1, 32, 32)`` float images in ``[0, 1]`` and ``(N,)`` labels, seeded split.
* :func:`shapes` -- ``(N, 3, S, S)`` images of a circle, square or triangle on a textured background,
  ``(N,)`` labels and exact ``(N, S, S)`` masks (``0`` background, ``1 + label`` shape).
* :func:`volumes` -- ``(N, 1, S, S, S)`` noisy volumes holding one sphere or cube, ``(N,)`` labels and exact
  ``(N, S, S, S)`` masks (``0`` background, ``1 + label`` object).
* :func:`signals` -- ``(N, 1, L)`` smooth periodic signals with one injected anomaly each, the clean
  signals, and exact ``(N, L)`` anomaly masks.
* :func:`photo` / :func:`photo_names` -- ``(3, H, W)`` float photos, optionally resized.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_int
from .deprecation import renamed
from .optional import require

__all__ = [
    "ANOMALY_KINDS",
    "MIN_SHAPE_SIZE",
    "MIN_SIGNAL_LENGTH",
    "MIN_VOLUME_SIZE",
    "SHAPE_CLASSES",
    "SHAPE_COLORS",
    "VOLUME_CLASSES",
    "digits",
    "draw_shape",
    "photo",
    "photo_names",
    "shapes",
    "signals",
    "volumes",
]

#: Class names of :func:`shapes`, by label.
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle")

#: Palette of shape colours (RGB in ``[0, 1]``), drawn independently of the class.
SHAPE_COLORS: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.0, 0.0),
    (0.0, 0.8, 0.0),
    (0.0, 0.25, 1.0),
    (1.0, 0.9, 0.0),
    (1.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (1.0, 0.5, 0.0),
    (1.0, 1.0, 1.0),
)

#: Smallest image side :func:`shapes` accepts.
MIN_SHAPE_SIZE = 16


# --------------------------------------------------------------------------------------------- digits


@renamed(seed="random_state")
def digits(
    split: str = "train",
    size: int = 32,
    test_fraction: float = 0.25,
    random_state: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 handwritten digits (1797 images), upsampled bilinearly to ``size x size``.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``; the split is stratified and fixed by ``random_state``.
        size: output side (``>= 8``).
        test_fraction: share of the test split, in ``(0, 1)``.
        random_state: seed of the split.

    Returns:
        ``images`` ``(N, 1, size, size)`` float32 in ``[0, 1]`` and ``labels`` ``(N,)`` int64 in ``0..9``.
    """
    load_digits = require("sklearn.datasets", "areacam.data.digits").load_digits
    train_test_split = require("sklearn.model_selection", "areacam.data.digits").train_test_split

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    size = check_int("size", size, 8)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.clamp_(0.0, 1.0)
    if split == "all":
        return images.contiguous(), labels
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=random_state, stratify=bunch.target
    )
    idx = torch.from_numpy(np.sort(train_idx if split == "train" else test_idx))
    return images[idx].contiguous(), labels[idx]


# --------------------------------------------------------------------------------------------- shapes


def _shape_mask(kind: str, size: int, center: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """``(size, size)`` bool mask of one shape (rasterised by skimage.draw)."""
    draw = require("skimage.draw", "areacam.data.shapes")
    disk, polygon = draw.disk, draw.polygon

    mask = np.zeros((size, size), dtype=bool)
    cy, cx = center
    if kind == "circle":
        rr, cc = disk((cy, cx), radius, shape=(size, size))
    elif kind in ("square", "triangle"):
        corners = 4 if kind == "square" else 3
        # Circumradius so that squares and triangles have an area comparable to the circle's.
        r = radius * (1.25 if kind == "square" else 1.45)
        t = angle + 2 * np.pi * np.arange(corners) / corners
        rr, cc = polygon(cy + r * np.sin(t), cx + r * np.cos(t), shape=(size, size))
    else:
        raise ValueError(f"unknown shape {kind!r}; valid shapes: {', '.join(SHAPE_CLASSES)}")
    mask[rr, cc] = True
    return mask


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(3, size, size)`` float32 textured background in ``[0.05, 0.95]``: stripes or checks plus noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
    other = rng.uniform(0.2, 0.8, size=3).astype(np.float32)
    kind = rng.integers(3)
    freq = rng.uniform(2.0, 6.0)
    theta = rng.uniform(0, np.pi)
    if kind == 0:  # stripes
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)))
    elif kind == 1:  # checkerboard
        t = ((np.floor(xx * freq) + np.floor(yy * freq)) % 2).astype(np.float32)
    else:  # smooth blobs
        t = 0.5 + 0.25 * (np.sin(2 * np.pi * freq * xx + theta) + np.cos(2 * np.pi * freq * yy * 0.7))
    t = t.astype(np.float32)
    img = base[:, None, None] * (1 - t) + other[:, None, None] * t
    img += rng.normal(0.0, 0.04, size=img.shape).astype(np.float32)
    return np.clip(img, 0.05, 0.95).astype(np.float32)


def draw_shape(
    background: np.ndarray | torch.Tensor,
    kind: str,
    center: tuple[float, float],
    radius: float,
    color: Sequence[float],
    angle: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint one solid shape onto ``background`` through its mask.

    Args:
        background: ``(3, S, S)`` float image (not modified).
        kind: one of :data:`SHAPE_CLASSES`.
        center: ``(y, x)`` in pixels; ``radius``: in pixels (circle radius; polygons get a comparable area).
        color: RGB triple in ``[0, 1]``.
        angle: rotation of squares and triangles, radians.

    Returns:
        ``image`` ``(3, S, S)`` float32 and ``mask`` ``(S, S)`` bool. The painted pixels are exactly the mask:
        any background pixel that happens to equal ``color`` exactly is nudged by ``1/255``, so
        ``(image == color).all(0) == mask`` holds pixel for pixel.
    """
    bg = torch.as_tensor(background, dtype=torch.float32).numpy().copy()
    if bg.ndim != 3 or bg.shape[0] != 3 or bg.shape[1] != bg.shape[2]:
        raise ValueError(f"background must be a (3, S, S) image, got shape {bg.shape}")
    col = np.asarray(color, dtype=np.float32)
    if col.shape != (3,) or not np.all((col >= 0) & (col <= 1)):
        raise ValueError(f"color must be 3 values in [0, 1], got {color!r}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius!r}")
    mask = _shape_mask(kind, bg.shape[1], center, float(radius), float(angle))
    clash = np.all(bg == col[:, None, None], axis=0) & ~mask
    if clash.any():
        nudge = np.where(col > 0.5, -1.0 / 255, 1.0 / 255).astype(np.float32)
        bg[:, clash] += nudge[:, None]
    bg[:, mask] = col[:, None]
    return torch.from_numpy(bg), torch.from_numpy(mask)


@renamed(seed="random_state")
def shapes(
    n: int,
    size: int = 64,
    random_state: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded synthetic shapes: one circle, square or triangle per image on a textured background.

    The class (:data:`SHAPE_CLASSES`), colour (:data:`SHAPE_COLORS`, independent of the class), size,
    position and rotation are random; every shape lies fully inside the image. Image ``i`` depends only
    on ``(random_state, i, size)``, so ``shapes(10)[k][:5]`` equals ``shapes(5)[k]``.

    Args:
        n: number of images (``>= 1``).
        size: side ``S`` (``>= 16``).
        random_state: random seed.

    Returns:
        ``images`` ``(n, 3, S, S)`` float32 in ``[0, 1]``, ``labels`` ``(n,)`` int64 in ``{0, 1, 2}``,
        ``masks`` ``(n, S, S)`` int64: ``0`` background, ``1 + label`` on exactly the pixels painted with
        the shape's colour.
    """
    n = check_int("n", n, 1)
    size = check_int("size", size, MIN_SHAPE_SIZE)
    random_state = check_int("random_state", random_state, 0)
    images = np.empty((n, 3, size, size), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    masks = np.empty((n, size, size), dtype=np.int64)
    for i in range(n):
        rng = np.random.default_rng([random_state, i, size])
        label = int(rng.integers(len(SHAPE_CLASSES)))
        radius = rng.uniform(0.16, 0.28) * size
        margin = radius * 1.5 + 1
        center = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
        color = SHAPE_COLORS[int(rng.integers(len(SHAPE_COLORS)))]
        angle = rng.uniform(0, 2 * np.pi)
        img, mask = draw_shape(_background(rng, size), SHAPE_CLASSES[label], center, radius, color, angle)
        images[i] = img.numpy()
        labels[i] = label
        masks[i] = mask.numpy().astype(np.int64) * (label + 1)
    return torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(masks)


# -------------------------------------------------------------------------------------------- volumes

#: Class names of :func:`volumes`, by label.
VOLUME_CLASSES: tuple[str, ...] = ("sphere", "cube")

#: Smallest volume side :func:`volumes` accepts.
MIN_VOLUME_SIZE = 16


@renamed(seed="random_state")
def volumes(n: int, size: int = 32, random_state: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded synthetic volumes: one bright sphere or axis-aligned cube in Gaussian noise.

    The class (:data:`VOLUME_CLASSES`), radius (18-30% of the side; a cube's half side is 0.8 times it,
    so both have similar volumes), position (fully inside) and brightness are random; the object's
    brightness is independent of its class, so only its shape tells the class. Volume ``i`` depends only
    on ``(random_state, i, size)``.

    Returns:
        ``volumes`` ``(n, 1, S, S, S)`` float32, ``labels`` ``(n,)`` int64 in ``{0, 1}``, ``masks``
        ``(n, S, S, S)`` int64: ``0`` background, ``1 + label`` on exactly the object's voxels (the noise-free
        object is constant on them and zero elsewhere).
    """
    n = check_int("n", n, 1)
    size = check_int("size", size, MIN_VOLUME_SIZE)
    random_state = check_int("random_state", random_state, 0)
    grid = np.stack(np.mgrid[0:size, 0:size, 0:size]).astype(np.float32) + 0.5  # voxel centres
    data = np.empty((n, 1, size, size, size), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    masks = np.empty((n, size, size, size), dtype=np.int64)
    for i in range(n):
        rng = np.random.default_rng([random_state, i, size, 3])
        label = int(rng.integers(len(VOLUME_CLASSES)))
        radius = rng.uniform(0.18, 0.3) * size
        center = rng.uniform(radius + 1, size - radius - 1, size=3).astype(np.float32)
        offset = grid - center[:, None, None, None]
        if label == 0:
            inside = (offset**2).sum(0) <= radius**2
        else:
            inside = np.abs(offset).max(0) <= 0.8 * radius
        level = rng.uniform(0.5, 1.0)
        noise = rng.normal(0.0, 0.2, size=(size, size, size)).astype(np.float32)
        data[i, 0] = noise + level * inside
        labels[i] = label
        masks[i] = inside.astype(np.int64) * (label + 1)
    return torch.from_numpy(data), torch.from_numpy(labels), torch.from_numpy(masks)


# -------------------------------------------------------------------------------------------- signals

#: Kinds of anomaly :func:`signals` injects.
ANOMALY_KINDS: tuple[str, ...] = ("spike", "shift", "burst", "flat")

#: Shortest signal :func:`signals` accepts.
MIN_SIGNAL_LENGTH = 64


@renamed(seed="random_state")
def signals(
    n: int, length: int = 256, random_state: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded synthetic signals, each with one anomaly injected at a known window.

    A clean signal is the sum of two sines (random periods of 16-64 samples, phases and amplitudes)
    plus Gaussian noise (sigma 0.05). One window of 8-24 samples, fully inside, is replaced by an
    anomaly of a random kind (:data:`ANOMALY_KINDS`): a ``spike`` (a triangle of height 1.5-2.5), a level
    ``shift`` (+-1-1.5), a high-frequency ``burst`` (period 4) or a ``flat`` line at the window's first
    value. Signal ``i`` depends only on ``(random_state, i, length)``.

    Returns:
        ``signals`` ``(n, 1, L)`` float32 with the anomaly, ``clean`` ``(n, 1, L)`` the same signals
        without it, ``masks`` ``(n, L)`` bool: exactly the window where the anomaly was injected.
    """
    n = check_int("n", n, 1)
    length = check_int("length", length, MIN_SIGNAL_LENGTH)
    random_state = check_int("random_state", random_state, 0)
    t = np.arange(length, dtype=np.float32)
    clean = np.empty((n, 1, length), dtype=np.float32)
    noisy = np.empty((n, 1, length), dtype=np.float32)
    masks = np.zeros((n, length), dtype=bool)
    for i in range(n):
        rng = np.random.default_rng([random_state, i, length, 1])
        wave = np.zeros(length, dtype=np.float32)
        for amplitude in (rng.uniform(0.5, 1.0), rng.uniform(0.1, 0.4)):
            period, phase = rng.uniform(16, 64), rng.uniform(0, 2 * np.pi)
            wave += amplitude * np.sin(2 * np.pi * t / period + phase)
        wave += rng.normal(0.0, 0.05, size=length).astype(np.float32)
        width = int(rng.integers(8, 25))
        start = int(rng.integers(0, length - width + 1))
        kind = ANOMALY_KINDS[int(rng.integers(len(ANOMALY_KINDS)))]
        part = wave[start : start + width].copy()
        if kind == "spike":
            part += rng.uniform(1.5, 2.5) * (1 - np.abs(np.linspace(-1, 1, width, dtype=np.float32)))
        elif kind == "shift":
            part += rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 1.5)
        elif kind == "burst":
            part += 0.8 * np.sin(2 * np.pi * np.arange(width, dtype=np.float32) / 4 + rng.uniform(0, 2 * np.pi))
        else:
            part[:] = part[0]
        clean[i, 0] = wave
        noisy[i, 0] = wave
        noisy[i, 0, start : start + width] = part
        masks[i, start : start + width] = True
    return torch.from_numpy(noisy), torch.from_numpy(clean), torch.from_numpy(masks)


# --------------------------------------------------------------------------------------------- photos

_SKIMAGE_PHOTOS = ("astronaut", "camera", "cat", "chelsea", "coffee", "coins", "immunohistochemistry", "rocket")
_SKLEARN_PHOTOS = ("china", "flower")


def photo_names() -> list[str]:
    """Names accepted by :func:`photo` (all bundled with scikit-image / scikit-learn, no download)."""
    return sorted(_SKIMAGE_PHOTOS + _SKLEARN_PHOTOS)


def photo(name: str, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """A bundled photo as a ``(3, H, W)`` float32 tensor in ``[0, 1]`` (grey images repeated to 3 channels).

    Args:
        name: one of :func:`photo_names` (``"astronaut"``, ``"coffee"``, ``"chelsea"``, ``"camera"``, ...;
            ``"china"`` and ``"flower"`` are scikit-learn's ``load_sample_images``).
        size: ``None`` (original size), an int (square ``size x size``) or ``(H, W)``; bilinear resize with
            antialiasing.
    """
    if name not in photo_names():
        raise ValueError(f"unknown photo {name!r}; valid names: {', '.join(photo_names())}")
    if name in _SKIMAGE_PHOTOS:
        arr = np.asarray(getattr(require("skimage.data", "areacam.data.photo"), name)())
    else:
        bunch = require("sklearn.datasets", "areacam.data.photo").load_sample_images()
        index = [f.replace("\\", "/").rsplit("/", 1)[-1] for f in bunch.filenames].index(f"{name}.jpg")
        arr = np.asarray(bunch.images[index])
    img = torch.from_numpy(arr.astype(np.float32) / 255.0)
    img = img.unsqueeze(0).repeat(3, 1, 1) if img.dim() == 2 else img[..., :3].permute(2, 0, 1)
    if size is not None:
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            hw = (int(size), int(size))
        elif (
            isinstance(size, (tuple, list))
            and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
        ):
            hw = (int(size[0]), int(size[1]))
        else:
            raise TypeError(f"size must be None, an int or (H, W), got {size!r}")
        if min(hw) < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        img = F.interpolate(img[None], size=hw, mode="bilinear", align_corners=False, antialias=True)[0]
        img = img.clamp_(0.0, 1.0)
    return img.contiguous()
