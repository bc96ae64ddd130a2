"""Synthetic shapes with exact masks: one circle, square or triangle per image on a textured background."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from areacam._util.checks import check_int
from areacam._util.optional import require

__all__ = ["DISTRACTOR", "MIN_SHAPE_SIZE", "SHAPE_CLASSES", "SHAPE_COLORS", "draw_shape", "shapes"]

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

#: The shape :func:`shapes` paints as a distractor: not a class, its pixels are background in the mask.
DISTRACTOR = "pentagon"

#: Smallest image side :func:`shapes` accepts.
MIN_SHAPE_SIZE = 16


def _shape_mask(kind: str, size: int, center: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """``(size, size)`` bool mask of one shape (rasterised by skimage.draw)."""
    draw = require("skimage.draw", "areacam.data.shapes")
    disk, polygon = draw.disk, draw.polygon

    mask = np.zeros((size, size), dtype=bool)
    cy, cx = center
    if kind == "circle":
        rr, cc = disk((cy, cx), radius, shape=(size, size))
    elif kind in ("square", "triangle", DISTRACTOR):
        corners = {"square": 4, "triangle": 3, DISTRACTOR: 5}[kind]
        # Circumradius so that squares and triangles have an area comparable to the circle's.
        r = radius * {"square": 1.25, "triangle": 1.45, DISTRACTOR: 1.1}[kind]
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
        kind: one of :data:`SHAPE_CLASSES`, or :data:`DISTRACTOR`.
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


def shapes(
    n: int,
    size: int = 64,
    random_state: int = 0,
    distractor: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded synthetic shapes: one circle, square or triangle per image on a textured background.

    The class (:data:`SHAPE_CLASSES`), colour (:data:`SHAPE_COLORS`, independent of the class), size,
    position and rotation are random; every shape lies fully inside the image. Image ``i`` depends only
    on ``(random_state, i, size, distractor)``, so ``shapes(10)[k][:5]`` equals ``shapes(5)[k]``.

    With ``distractor > 0``, that share of the images (drawn per image) also holds a solid
    :data:`DISTRACTOR` (a pentagon) in another palette colour, beside the shape where it fits: it looks
    like a shape but is background in the mask, so a segmenter that paints it makes real false
    positives. ``distractor=0`` gives the images of earlier releases, bit for bit.

    Args:
        n: number of images (``>= 1``).
        size: side ``S`` (``>= 16``).
        random_state: random seed.
        distractor: share of images with a distractor, in ``[0, 1]``.

    Returns:
        ``images`` ``(n, 3, S, S)`` float32 in ``[0, 1]``, ``labels`` ``(n,)`` int64 in ``{0, 1, 2}``,
        ``masks`` ``(n, S, S)`` int64: ``0`` background, ``1 + label`` on exactly the pixels painted with
        the shape's colour.
    """
    n = check_int("n", n, 1)
    size = check_int("size", size, MIN_SHAPE_SIZE)
    random_state = check_int("random_state", random_state, 0)
    if isinstance(distractor, bool) or not isinstance(distractor, (int, float)) or not 0 <= distractor <= 1:
        raise ValueError(f"distractor must be a share in [0, 1], got {distractor!r}")
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
        background = _background(rng, size)
        if distractor > 0:  # its own stream: the shape above is the same with or without distractors
            avoid = _shape_mask(SHAPE_CLASSES[label], size, center, radius, angle)
            stream = np.random.default_rng([random_state, i, size, 1])
            background = _add_distractor(background, stream, distractor, color, avoid)
        img, mask = draw_shape(background, SHAPE_CLASSES[label], center, radius, color, angle)
        images[i] = img.numpy()
        labels[i] = label
        masks[i] = mask.numpy().astype(np.int64) * (label + 1)
    return torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(masks)


def _add_distractor(
    background: np.ndarray, rng: np.random.Generator, share: float, shape_color: Sequence[float], avoid: np.ndarray
) -> np.ndarray:
    """``background`` with a :data:`DISTRACTOR` in a colour other than the shape's, with chance ``share``.

    It is placed clear of the shape's mask ``avoid`` (by 2 pixels); where 50 tries find no room, the
    image has none.
    """
    if rng.random() >= share:
        return background
    size = background.shape[-1]
    radius = rng.uniform(0.1, 0.16) * size
    margin = radius * 1.1 + 1
    colors = [c for c in SHAPE_COLORS if tuple(c) != tuple(shape_color)]
    color = colors[int(rng.integers(len(colors)))]
    angle = rng.uniform(0, 2 * np.pi)
    grown = avoid.copy()
    for dy in (-2, -1, 0, 1, 2):
        for dx in (-2, -1, 0, 1, 2):
            grown |= np.roll(np.roll(avoid, dy, 0), dx, 1)  # the shape keeps a margin: nothing wraps
    for _ in range(50):
        center = (rng.uniform(margin, size - margin), rng.uniform(margin, size - margin))
        if not (_shape_mask(DISTRACTOR, size, center, radius, angle) & grown).any():
            image, _ = draw_shape(background, DISTRACTOR, center, radius, color, angle)
            return image.numpy()
    return background
