"""Synthetic volumes with exact masks: one bright sphere or cube in noise per volume."""

from __future__ import annotations

import numpy as np
import torch

from areacam._util.checks import check_int

__all__ = ["MIN_VOLUME_SIZE", "VOLUME_CLASSES", "volumes"]

#: Class names of :func:`volumes`, by label.
VOLUME_CLASSES: tuple[str, ...] = ("sphere", "cube")

#: Smallest volume side :func:`volumes` accepts.
MIN_VOLUME_SIZE = 16


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
    grid = np.mgrid[0:size, 0:size, 0:size].astype(np.float32) + 0.5  # voxel centres
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
