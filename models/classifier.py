"""A small VGG-style image classifier: 5 x [conv3x3-BN-ReLU-maxpool2] + 3 linear layers."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from areacam._util.checks import check_int

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """Convolutional classifier with a fixed-size fully connected head.

    Layout (dotted names usable as explainer layers)::

        features.block1 .. features.block5   each Sequential(conv, bn, relu, pool)
        features.block5.relu                 last activation before the final pool (usual CAM layer)
        classifier.fc1, classifier.fc2, classifier.fc3

    Channels per block are ``width * (1, 2, 4, 8, 8)``. After the five 2x2 max-pools the feature map is
    ``input_size / 32`` pixels wide, so ``input_size`` must be a multiple of 32. The usual Grad-CAM
    layer is ``"features.block5.relu"`` (``input_size / 16`` pixels wide, e.g. 4x4 for 64x64 inputs);
    ``"features.block4"`` gives the same resolution with less semantic features.

    Args:
        num_classes: number of output logits ``N``.
        in_channels: input channels ``C``.
        width: channels of the first block.
        input_size: side ``S`` of the square inputs the head is built for.
        hidden: width of the two hidden linear layers.
        dropout: dropout probability between the linear layers (only active in train mode).

    Shapes:
        ``forward``: ``(B, C, S, S)`` float -> ``(B, N)`` logits.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        width: int = 16,
        input_size: int = 64,
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes)
        check_int("in_channels", in_channels)
        check_int("width", width)
        check_int("hidden", hidden)
        check_int("input_size", input_size)
        if input_size % 32 != 0:
            raise ValueError(f"input_size must be a positive multiple of 32 (five 2x2 max-pools), got {input_size}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.areacam_spec: dict[str, Any] = {
            "name": "classifier",
            "kwargs": dict(
                num_classes=num_classes,
                in_channels=in_channels,
                width=width,
                input_size=input_size,
                hidden=hidden,
                dropout=dropout,
            ),
        }
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_size = input_size
        channels = [width * m for m in (1, 2, 4, 8, 8)]
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i, c_out in enumerate(channels, start=1):
            blocks[f"block{i}"] = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                    bn=nn.BatchNorm2d(c_out),
                    relu=nn.ReLU(),
                    pool=nn.MaxPool2d(2),
                )
            )
            c_in = c_out
        self.features = nn.Sequential(blocks)
        side = input_size // 32
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(c_in * side * side, hidden),
                relu1=nn.ReLU(),
                drop1=nn.Dropout(dropout),
                fc2=nn.Linear(hidden, hidden),
                relu2=nn.ReLU(),
                drop2=nn.Dropout(dropout),
                fc3=nn.Linear(hidden, num_classes),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` -> ``(B, num_classes)`` logits."""
        if x.dim() != 4:
            raise ValueError(f"Classifier expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        expected = (self.in_channels, self.input_size, self.input_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Classifier was built for inputs of shape (B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"(in_channels={self.in_channels}, input_size={self.input_size}), "
                f"got {tuple(x.shape)}; resize the input or build the model with "
                f"input_size={x.shape[-1] if x.shape[-1] == x.shape[-2] else '...'}"
            )
        return self.classifier(self.features(x))
