"""Reference models beyond images: a small 3-D U-Net for volumes and a 1-D convolutional autoencoder for signals.

* :class:`UNet3D` -- ``(B, C, S, S, S) -> (B, N, S, S, S)`` segmentation logits; trained on
  :func:`areacam.data.volumes` (spheres and cubes in noise, exact masks).
* :class:`SignalAE` -- ``(B, C, L) -> (recon (B, C, L), code (B, K, L / 16))``; trained on the clean
  signals of :func:`areacam.data.signals`, so the injected anomalies are what it reconstructs badly:
  ``ac.ReconstructionError(box=(start, stop))`` reads ``recon``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SignalAE", "UNet3D"]


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class _Block3d(nn.Sequential):
    """Two 3x3x3 convolutions with BatchNorm and ReLU: ``conv1, bn1, relu1, conv2, bn2, relu2``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(cout)
        self.relu2 = nn.ReLU(inplace=True)


class UNet3D(nn.Module):
    """A small 3-D U-Net: two poolings, skip connections by concatenation.

    Submodules: ``enc1`` (full size, ``width`` channels), ``pool1``, ``enc2`` (1/2, 2x), ``pool2``,
    ``bottleneck`` (1/4, 4x), ``up2``, ``dec2`` (1/2), ``up1``, ``dec1`` (full size), ``head`` (1x1x1 to
    ``num_classes``). Usual CAM layers: ``bottleneck`` (coarse), ``dec2``, ``dec1``. The side must be a
    multiple of 4.
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 1, width: int = 8):
        super().__init__()
        for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("width", width)):
            _positive(name, value)
        w = width
        self.enc1 = _Block3d(in_channels, w)
        self.pool1 = nn.MaxPool3d(2)
        self.enc2 = _Block3d(w, 2 * w)
        self.pool2 = nn.MaxPool3d(2)
        self.bottleneck = _Block3d(2 * w, 4 * w)
        self.up2 = nn.ConvTranspose3d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _Block3d(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose3d(2 * w, w, 2, stride=2)
        self.dec1 = _Block3d(2 * w, w)
        self.head = nn.Conv3d(w, num_classes, 1)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels or any(s % 4 for s in x.shape[2:]):
            raise ValueError(
                f"UNet3D expects (B, {self.in_channels}, D, H, W) with sides divisible by 4, got {tuple(x.shape)}"
            )
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        b = self.bottleneck(self.pool2(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


class SignalAE(nn.Module):
    """A 1-D convolutional autoencoder: four stride-2 convolutions down to ``code_channels`` x ``L/16``, and back.

    ``forward(x)`` returns ``(recon, code)``: ``recon`` ``(B, C, L)`` (linear output, no squashing),
    ``code`` ``(B, code_channels, L / 16)``. Submodules: ``encoder.conv1..conv4`` (``relu1..relu3``
    between), ``decoder.deconv1..deconv4`` (``relu1..relu3``). Usual CAM layers: ``decoder.deconv2``
    (L/4), ``encoder.conv3`` (L/8): convolutions, whose type fixes the channels-first layout (a ReLU's
    ``(B, C, l)`` output is ambiguous in 1-D and needs ``layout="nchw"``). ``L`` must be a multiple of 16.
    """

    def __init__(self, in_channels: int = 1, width: int = 16, code_channels: int = 4):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width), ("code_channels", code_channels)):
            _positive(name, value)
        w = width
        self.encoder = nn.Sequential()
        self.decoder = nn.Sequential()
        sizes = [in_channels, w, 2 * w, 2 * w, code_channels]
        for i in range(4):
            self.encoder.add_module(f"conv{i + 1}", nn.Conv1d(sizes[i], sizes[i + 1], 7, stride=2, padding=3))
            if i < 3:
                self.encoder.add_module(f"relu{i + 1}", nn.ReLU())
        back = sizes[::-1]
        for i in range(4):
            self.decoder.add_module(f"deconv{i + 1}", nn.ConvTranspose1d(back[i], back[i + 1], 8, stride=2, padding=3))
            if i < 3:
                self.decoder.add_module(f"relu{i + 1}", nn.ReLU())
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape[1] != self.in_channels or x.shape[2] % 16:
            raise ValueError(
                f"SignalAE expects (B, {self.in_channels}, L) with L divisible by 16, got {tuple(x.shape)}"
            )
        code = self.encoder(x)
        return self.decoder(code), code
