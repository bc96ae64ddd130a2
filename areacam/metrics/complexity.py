"""Complexity of a map: sparseness (Gini index) and entropy, ``(B, K)`` each."""

from __future__ import annotations

import torch
from torch import Tensor

from areacam.metrics.catalog import describe
from areacam.metrics.maps import MapsLike, as_maps

__all__ = ["entropy", "sparseness"]


@describe("sparseness", "complexity", higher_is_better=True, layer_ranking=False)
def sparseness(maps: MapsLike) -> Tensor:
    """Gini index of each map's absolute values: ``(B, K)`` in ``[0, 1)``, higher = sparser.

    As Quantus 0.6 ``Sparseness`` (Chalasani et al. 2020): ``|a| + 1e-7`` sorted ascending,
    ``sum((2i - n - 1) a_i) / (n sum(a_i))``; computed in float64. A constant map scores 0.
    """
    values = as_maps(maps).abs().double().flatten(2) + 1e-7
    values = values.sort(dim=2).values
    count = values.shape[2]
    index = torch.arange(1, count + 1, dtype=values.dtype, device=values.device)
    gini = ((2 * index - count - 1) * values).sum(2) / (count * values.sum(2))
    return gini.float()


@describe("entropy", "complexity", higher_is_better=False, layer_ranking=False)
def entropy(maps: MapsLike) -> Tensor:
    """Shannon entropy (nats) of each map's absolute values taken as a distribution: ``(B, K)``.

    As Quantus 0.6 ``Complexity`` (Bhatt et al. 2020): ``p = |a| / sum|a|``, ``-sum p log(p + 1e-12)``.
    A constant map has the largest entropy, ``log(H * W)`` (an all-zero map is taken as uniform).
    """
    values = as_maps(maps).abs().double().flatten(2)
    total = values.sum(2, keepdim=True)
    uniform = torch.full_like(values, 1.0 / values.shape[2])
    share = torch.where(total > 0, values / torch.where(total > 0, total, 1), uniform)
    return (-(share * torch.log(share + 1e-12)).sum(2)).float()
