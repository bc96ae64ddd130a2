"""Generated textures, a stated share of them with an anomaly at an exact mask: the anomaly benchmark's data."""

from __future__ import annotations

import numpy as np
import torch

from areacam._util.checks import check_int

__all__ = ["ANOMALY_TYPES", "MIN_ANOMALY_SIZE", "TEXTURE_FAMILIES", "anomalies"]

#: The texture families of :func:`anomalies`, drawn uniformly.
TEXTURE_FAMILIES: tuple[str, ...] = ("stripes", "grain", "cells", "weave")

#: The anomaly types of :func:`anomalies`, drawn uniformly for each abnormal image.
ANOMALY_TYPES: tuple[str, ...] = ("blob", "scratch", "spot", "missing")

#: Smallest image side :func:`anomalies` accepts.
MIN_ANOMALY_SIZE = 32


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` value noise in ``[0, 1]``: a ``cells x cells`` random grid, bilinearly upsampled."""
    grid = rng.uniform(0.0, 1.0, size=(cells + 1, cells + 1))
    pos = np.linspace(0.0, cells, size, endpoint=False)
    i = pos.astype(int)
    f = pos - i
    f = f * f * (3 - 2 * f)  # smoothstep, as Perlin's fade
    rows = grid[i] * (1 - f)[:, None] + grid[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def _perlin_like(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size)`` fractal value noise (three octaves), scaled to ``[0, 1]``."""
    base = int(rng.integers(2, 5))
    noise = np.sum([0.5**o * _smooth_noise(rng, size, base * 2**o) for o in range(3)], axis=0)
    noise = noise - noise.min()
    return noise / max(float(noise.max()), 1e-12)


def _colour(rng: np.random.Generator, low: float = 0.15, high: float = 0.85) -> np.ndarray:
    return rng.uniform(low, high, size=3)


def _texture(rng: np.random.Generator, family: str, size: int) -> np.ndarray:
    """``(3, size, size)`` float64 texture of one family, in ``[0, 1]``."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    if family == "stripes":  # sinusoidal stripes, any orientation
        theta, freq = rng.uniform(0, np.pi), rng.uniform(4.0, 9.0)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + rng.uniform(0, 6.3))
    elif family == "grain":  # fine smooth noise, like wood or sand grain
        t = 0.6 * _smooth_noise(rng, size, size // 4) + 0.4 * _smooth_noise(rng, size, size // 16)
    elif family == "cells":  # Voronoi cells: distance to the nearest of a few seeds
        seeds = rng.uniform(0, 1, size=(int(rng.integers(10, 25)), 2))
        dist = np.sqrt((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2).min(-1)
        t = np.clip(dist / max(float(dist.max()), 1e-12), 0, 1)
    elif family == "weave":  # two orthogonal square-ish waves: a woven grid
        freq = rng.uniform(5.0, 10.0)
        a = 0.5 + 0.5 * np.sin(2 * np.pi * freq * xx)
        b = 0.5 + 0.5 * np.sin(2 * np.pi * freq * yy)
        t = np.where((np.floor(freq * xx) + np.floor(freq * yy)) % 2 == 0, a, b)
    else:  # pragma: no cover - families are fixed above
        raise ValueError(f"unknown texture family {family!r}; valid: {', '.join(TEXTURE_FAMILIES)}")
    low, high = _colour(rng), _colour(rng)
    img = low[:, None, None] * (1 - t) + high[:, None, None] * t
    img += rng.normal(0.0, 0.02, size=img.shape)
    return np.clip(img, 0.02, 0.98)


def _blob_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fractal noise thresholded inside a random soft window (as anomalib's Perlin anomalies)."""
    for _ in range(20):
        cy, cx = rng.uniform(0.2, 0.8, size=2) * size
        radius = rng.uniform(0.08, 0.18) * size
        yy, xx = np.mgrid[0:size, 0:size]
        window = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        mask = _perlin_like(rng, size) * window > rng.uniform(0.3, 0.5)
        if mask.sum() >= max(4, size * size // 400):
            return mask
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2  # pragma: no cover - very unlikely fallback


def _scratch_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A thin curved line (one or two pixels wide) across part of the image."""
    mask = np.zeros((size, size), dtype=bool)
    start = rng.uniform(0.15, 0.85, size=2) * size
    angle, bend = rng.uniform(0, 2 * np.pi), rng.uniform(-0.04, 0.04)
    length, width = rng.uniform(0.3, 0.6) * size, rng.uniform(0.6, 1.2)
    t = np.linspace(0, length, int(4 * length))
    ys = start[0] + np.cumsum(np.sin(angle + bend * t)) * (t[1] - t[0])
    xs = start[1] + np.cumsum(np.cos(angle + bend * t)) * (t[1] - t[0])
    yy, xx = np.mgrid[0:size, 0:size]
    for y, x in zip(ys, xs):
        mask |= (yy - y) ** 2 + (xx - x) ** 2 <= width**2
    return mask


def _spot_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A rotated ellipse."""
    cy, cx = rng.uniform(0.2, 0.8, size=2) * size
    a, b = rng.uniform(0.04, 0.12, size=2) * size
    phi = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size]
    u = (yy - cy) * np.cos(phi) + (xx - cx) * np.sin(phi)
    v = -(yy - cy) * np.sin(phi) + (xx - cx) * np.cos(phi)
    return (u / a) ** 2 + (v / b) ** 2 <= 1


def _missing_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """An axis-aligned rectangle."""
    h, w = (rng.uniform(0.1, 0.25, size=2) * size).astype(int) + 2
    top, left = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + h, left : left + w] = True
    return mask


def _inject(rng: np.random.Generator, img: np.ndarray, kind: str, family: str) -> tuple[np.ndarray, np.ndarray]:
    """The image with one anomaly of ``kind`` and its exact mask (every pixel the anomaly changed)."""
    size = img.shape[-1]
    if kind == "blob":  # a foreign texture blended in, as anomalib's generator does
        mask = _blob_mask(rng, size)
        other = _texture(rng, str(rng.choice([f for f in TEXTURE_FAMILIES if f != family])), size)
        beta = rng.uniform(0.6, 1.0)
        fill = beta * other + (1 - beta) * img
    elif kind == "scratch":  # a dark or bright line
        mask = _scratch_mask(rng, size)
        fill = np.full_like(img, 0.05 if img.mean() > 0.5 else 0.95)
    elif kind == "spot":  # a saturated colour stain, half transparent
        mask = _spot_mask(rng, size)
        stain = np.eye(3)[int(rng.integers(3))][:, None, None] * 0.95 + 0.02
        fill = 0.75 * stain + 0.25 * img
    elif kind == "missing":  # the texture is gone: its mean colour, no pattern
        mask = _missing_mask(rng, size)
        fill = np.broadcast_to(img.mean(axis=(1, 2), keepdims=True), img.shape)
    else:  # pragma: no cover - types are fixed above
        raise ValueError(f"unknown anomaly type {kind!r}; valid: {', '.join(ANOMALY_TYPES)}")
    return np.where(mask, fill, img), mask


def anomalies(
    n: int, size: int = 64, random_state: int | None = None, share: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated RGB textures, ``round(share * n)`` of them with one anomaly each at an exact mask.

    Textures (:data:`TEXTURE_FAMILIES`, drawn uniformly, random colours and scales): ``stripes``
    (sinusoidal, any orientation), ``grain`` (smooth value noise), ``cells`` (Voronoi distance) and
    ``weave`` (alternating horizontal and vertical waves), plus Gaussian noise (sigma 0.02). Anomalies
    (:data:`ANOMALY_TYPES`, drawn uniformly): a ``blob`` (three-octave value noise thresholded inside a
    random window, filled with another family's texture, as anomalib's ``PerlinAnomalyGenerator``), a
    ``scratch`` (a 1-2 px curved dark or bright line), a colour ``spot`` (a half-transparent saturated
    ellipse) and ``missing`` texture (a rectangle of the image's mean colour). The mask is exactly the
    set of pixels the anomaly replaced; normal images have empty masks.

    Image ``i`` depends only on ``(random_state, i, size)``; which images are abnormal depends on
    ``(random_state, n, share)``. ``random_state=None`` draws a fresh seed.

    Args:
        n: number of images.
        size: image side (at least :data:`MIN_ANOMALY_SIZE`).
        random_state: seed (an int >= 0) or ``None``.
        share: fraction of images with an anomaly, in ``[0, 1]`` (``0``: normal training data).

    Returns:
        ``x`` ``(n, 3, size, size)`` float32 in ``[0, 1]`` and ``masks`` ``(n, size, size)`` bool.
    """
    n = check_int("n", n, 1)
    size = check_int("size", size, MIN_ANOMALY_SIZE)
    if random_state is None:
        random_state = int(np.random.default_rng().integers(2**31))
    random_state = check_int("random_state", random_state, 0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ValueError(f"share must be a fraction in [0, 1], got {share!r}")
    count = round(share * n)
    abnormal = np.zeros(n, dtype=bool)
    abnormal[np.random.default_rng([random_state, n, 22, 1]).permutation(n)[:count]] = True
    x = np.empty((n, 3, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n):
        rng = np.random.default_rng([random_state, i, size, 22])
        family = TEXTURE_FAMILIES[int(rng.integers(len(TEXTURE_FAMILIES)))]
        kind = ANOMALY_TYPES[int(rng.integers(len(ANOMALY_TYPES)))]
        img = _texture(rng, family, size)
        if abnormal[i]:
            img, masks[i] = _inject(rng, img, kind, family)
        x[i] = img
    return torch.from_numpy(x), torch.from_numpy(masks)
