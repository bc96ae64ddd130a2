"""Small modules several test files share: captum's region wrapper, layout-permuting layers and a tiny
diffusers denoiser."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class RegionSum(nn.Module):
    """captum wrapper: one output channel summed over a per-dimension box ``(*starts, *stops)``.

    In 2-D the box is ``(top, left, bottom, right)``, as areacam's ``Area(box=...)``.
    """

    def __init__(self, model: nn.Module, box, channel: int):
        super().__init__()
        self.model, self.box, self.channel = model, box, channel

    def forward(self, x):
        half = len(self.box) // 2
        region = tuple(slice(a, b) for a, b in zip(self.box[:half], self.box[half:]))
        out = self.model(x)[(slice(None), self.channel, *region)]
        return out.flatten(1).sum(1)


class ChannelsLast(nn.Module):
    """``(B, C, H, W)`` -> ``(B, H, W, C)``."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class ChannelsFirst(nn.Module):
    """``(B, H, W, C)`` -> ``(B, C, H, W)``."""

    def forward(self, x):
        return x.permute(0, 3, 1, 2)


def peers(library: str, family: type | None = None, exclude: type | None = None) -> list[tuple[type, type]]:
    """``(ours, theirs)`` for every registered method whose ``peer`` is in ``library`` (e.g.
    ``"pytorch_grad_cam"``), optionally only subclasses of ``family`` and not of ``exclude``: the
    reference tests' parametrisation, so a newly registered method with a peer joins them."""
    import importlib

    from areacam.methods.registry import METHODS

    pairs = []
    for method in METHODS.values():
        module, _, name = method.peer.rpartition(".")
        if module.split(".")[0] != library:
            continue
        if (family is not None and not issubclass(method.cls, family)) or (
            exclude is not None and issubclass(method.cls, exclude)
        ):
            continue
        pairs.append((method.cls, getattr(importlib.import_module(module), name)))
    return pairs


def tiny_unet2d() -> nn.Module:
    """diffusers' ``UNet2DModel(x, timestep)`` from a tiny config, float64, seeded (skips without diffusers)."""
    diffusers = pytest.importorskip("diffusers")

    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).double()
