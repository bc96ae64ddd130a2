"""Similarity of two sets of maps: Spearman rank correlation and SSIM, ``(B, K)`` each.

Used by the randomisation checks (Adebayo et al. 2018), which compare maps of the same targets
before and after the model's weights are randomised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from areacam.metrics.maps import MapsLike, as_maps

__all__ = ["SSIM_WINDOW", "average_ranks", "spearman", "ssim"]

#: Side of the SSIM window (scikit-image's default ``win_size=7``).
SSIM_WINDOW = 7


def _pair(first: MapsLike, second: MapsLike) -> tuple[Tensor, Tensor]:
    first, second = as_maps(first, "first maps"), as_maps(second, "second maps")
    if first.shape != second.shape:
        raise ValueError(f"maps to compare differ in shape: {tuple(first.shape)} and {tuple(second.shape)}")
    return first, second.to(first.device)


def average_ranks(values: Tensor) -> Tensor:
    """Ranks ``1..n`` along the last dim, ties given their average rank: ``scipy.stats.rankdata``'s
    ``"average"`` method, in float64 on the values' device."""
    ordered, order = values.sort(dim=-1, stable=True)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    group = starts.long().cumsum(-1) - 1  # the tie group of each sorted position
    positions = torch.arange(1, values.shape[-1] + 1, dtype=torch.float64, device=values.device).expand_as(group)
    sums = torch.zeros(group.shape, dtype=torch.float64, device=values.device).scatter_add_(-1, group, positions)
    counts = torch.zeros_like(sums).scatter_add_(-1, group, torch.ones_like(positions))
    ranked = (sums / counts.clamp(min=1)).gather(-1, group)
    return torch.empty_like(ranked).scatter_(-1, order, ranked)


def spearman(first: MapsLike, second: MapsLike) -> Tensor:
    """Spearman rank correlation over the pixels of each pair of maps: ``(B, K)`` in ``[-1, 1]``.

    Ties get their average rank (as ``scipy.stats.spearmanr``; :func:`average_ranks`). Where either map
    is constant the correlation is undefined and reported as 0.
    """
    first, second = _pair(first, second)
    ranks = [average_ranks(m.flatten(2).double()) for m in (first, second)]
    a, b = (r - r.mean(2, keepdim=True) for r in ranks)
    norm = (a.pow(2).sum(2) * b.pow(2).sum(2)).sqrt()
    ok = norm > 0
    return torch.where(ok, (a * b).sum(2) / torch.where(ok, norm, 1), 0.0).float()


def ssim(first: MapsLike, second: MapsLike, data_range: float = 1.0) -> Tensor:
    """Mean structural similarity of each pair of maps: ``(B, K)``.

    Equal to ``skimage.metrics.structural_similarity(a, b, data_range=data_range)`` with its
    defaults: a 7x7 uniform window, ``K1=0.01``, ``K2=0.03``, sample covariance, the mean over the
    pixels at least 3 from the border; computed in float64. Maps must be at least 7x7.
    ``data_range`` is 1 for an :class:`~areacam.Explanation`'s maps in ``[0, 1]``.
    """
    first, second = _pair(first, second)
    if min(first.shape[2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs maps of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(first.shape[2:])}")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    batch, count, height, width = first.shape
    a = first.double().reshape(-1, 1, height, width)
    b = second.double().reshape(-1, 1, height, width)
    mean = lambda t: F.avg_pool2d(t, SSIM_WINDOW, stride=1)  # noqa: E731 - the valid region only
    cov_norm = SSIM_WINDOW**2 / (SSIM_WINDOW**2 - 1)
    ux, uy = mean(a), mean(b)
    vx = cov_norm * (mean(a * a) - ux * ux)
    vy = cov_norm * (mean(b * b) - uy * uy)
    vxy = cov_norm * (mean(a * b) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).view(batch, count).float()
