"""Noisy linear imputation (Rong et al. 2022, ROAD): fill removed pixels from their neighbours.

Each removed pixel is set to the weighted mean of its 8 neighbours (weights 1/6 side, 1/12 corner,
renormalised at the border), a sparse linear system over all removed pixels solved at once, then
``noise * N(0, 1)`` is added. The system, its right-hand side and the noise draw are those of
pytorch-grad-cam's ``NoisyLinearImputer`` (taken from the ROAD authors' code), so the same mask,
image and random state give the same pixels; the system is built with vectorised index arithmetic
instead of a ``lil_matrix`` filled neighbour by neighbour.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from areacam._util.optional import require

__all__ = ["NEIGHBOURS", "noisy_linear_impute"]

#: ``(dy, dx, weight)`` of the neighbours, in the order the reference accumulates them.
NEIGHBOURS: tuple[tuple[int, int, float], ...] = (
    (1, 1, 1 / 12),
    (0, 1, 1 / 6),
    (-1, 1, 1 / 12),
    (1, -1, 1 / 12),
    (0, -1, 1 / 6),
    (-1, -1, 1 / 12),
    (1, 0, 1 / 6),
    (-1, 0, 1 / 6),
)


def noisy_linear_impute(
    image: Tensor, keep: Tensor, noise: float = 0.01, generator: torch.Generator | None = None
) -> Tensor:
    """``image`` ``(C, H, W)`` with the pixels where ``keep`` ``(H, W)`` is False imputed: a new CPU tensor.

    ``generator`` draws the noise (``None``: torch's global generator, as the reference). With no
    pixel kept there is nothing to interpolate from: every pixel becomes the image's per-channel
    mean plus noise. With every pixel kept the image is returned unchanged (a copy).
    """
    sparse = require("scipy.sparse", "ROAD's noisy linear imputation")
    spsolve = require("scipy.sparse.linalg", "ROAD's noisy linear imputation").spsolve

    image = image.detach().float().cpu()
    channels, height, width = image.shape
    flat = image.reshape(channels, -1)
    kept = keep.detach().cpu().reshape(-1).numpy().astype(bool)
    unknown = np.flatnonzero(~kept)
    count = len(unknown)
    if count == 0:
        return image.clone()
    if count == kept.size:
        fill = flat.mean(1, keepdim=True).expand(channels, count)
        draws = torch.randn(fill.shape, generator=generator)
        return (fill + noise * draws).reshape(channels, height, width)
    pixels = flat.numpy()
    variable = np.zeros(kept.size, dtype=np.int64)
    variable[unknown] = np.arange(count)
    rows_y, rows_x = unknown // width, unknown % width
    diagonal = np.ones(count)
    rhs = np.zeros((count, channels))
    rows, cols, vals = [], [], []
    for dy, dx, weight in NEIGHBOURS:
        y, x = rows_y + dy, rows_x + dx
        inside = (y >= 0) & (x >= 0) & (y < height) & (x < width)
        diagonal[~inside] -= weight
        ids = np.flatnonzero(inside)
        coords = unknown[inside] + dy * width + dx
        known = kept[coords]
        rhs[ids[known], :] -= weight * pixels[:, coords[known]].T
        rows.append(ids[~known])
        cols.append(variable[coords[~known]])
        vals.append(np.full(int((~known).sum()), weight))
    rows.append(np.arange(count))
    cols.append(np.arange(count))
    vals.append(-diagonal)
    entries = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
    system = sparse.coo_matrix(entries, shape=(count, count))
    solution = torch.tensor(spsolve(system.tocsc(), rhs), dtype=torch.float).reshape(count, channels).t()
    shape = solution.shape if channels > 1 else (count,)  # the reference draws a vector for one channel
    draws = torch.randn(shape, generator=generator).reshape(channels, count)
    out = flat.clone()
    out[:, torch.from_numpy(unknown)] = solution + noise * draws
    return out.reshape(channels, height, width)
