"""Small modules several test files share: captum's region wrapper and layout-permuting layers."""

from __future__ import annotations

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
