"""Segmentation models: FCN-8s / FCN-32s on torchvision's AlexNet / VGG16, and smp's U-Net."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from areacam._util.checks import check_int
from areacam._util.optional import require

__all__ = ["BACKBONES", "FCN", "HEADS", "unet"]

BACKBONES = ("alexnet", "vgg16")
HEADS = ("8s", "32s")

# Default width of the fc6/fc7 convolutions (the paper's 4096 is too heavy for CPU training).
_HEAD_WIDTH = {"alexnet": 256, "vgg16": 512}


class _TappedSequential(nn.Sequential):
    """``nn.Sequential`` that also keeps the outputs of the layers listed in ``tap_indices``.

    Calling it runs the layers in order (so hooks on the Sequential itself and on each layer fire) and
    leaves ``{index: output}`` of the last call in ``self.taps``.
    """

    tap_indices: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self):
            x = layer(x)
            if i in self.tap_indices:
                taps[i] = x
        self.taps = taps
        return x


class _Backbone(nn.Module):
    """Holds the tapped ``features`` (so parameter names read ``backbone.features.N``, as torchvision's)."""

    def __init__(self, features: _TappedSequential) -> None:
        super().__init__()
        self.features = features


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    """A 2-D conv's ``kernel_size``/``stride``/``padding`` tuple, typed as the pair it is."""
    return values[0], values[1]


def _build_backbone(backbone: str, weights: Any) -> _TappedSequential:
    """The ``features`` Sequential of torchvision's ``alexnet``/``vgg16``.

    ``weights``: ``None`` (random init, no download), a torchvision weights enum or its name (passed to
    the torchvision constructor: may download), or a state dict of the full torchvision model (keys like
    ``features.0.weight``) or of its ``features`` part (keys like ``0.weight``).
    """
    ctor = {"alexnet": torchvision.models.alexnet, "vgg16": torchvision.models.vgg16}[backbone]
    if weights is None or isinstance(weights, Mapping):
        # Build on the meta device (the ~60-100M-parameter classifier is never allocated), then
        # materialise only the features and initialise them as torchvision does.
        with torch.device("meta"):
            net = ctor(weights=None)
        features = _TappedSequential(*net.features).to_empty(device="cpu")
        for m in features:
            if isinstance(m, nn.Conv2d):
                if backbone == "vgg16":  # torchvision.models.vgg.VGG.__init__
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                else:  # AlexNet keeps PyTorch's default initialisation
                    m.reset_parameters()
    else:
        features = _TappedSequential(*ctor(weights=weights).features)
    if isinstance(weights, Mapping):
        state = {k[len("features.") :]: v for k, v in weights.items() if k.startswith("features.")}
        if not state:
            state = dict(weights)
        try:
            missing, unexpected = features.load_state_dict(state, strict=False)
        except RuntimeError as err:
            detail = [line.strip() for line in str(err).splitlines() if line.strip()][-1]
            raise ValueError(f"backbone_weights do not match torchvision's {backbone}.features: {detail}") from None
        if missing or unexpected:
            raise ValueError(
                f"backbone_weights do not match torchvision's {backbone}.features: missing keys "
                f"{sorted(missing)[:5]}, unexpected keys {sorted(unexpected)[:5]}"
            )
    return features


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with constant buffers; ``(B, C, H, W) -> (B, C, H, W)``."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class FCN(nn.Module):
    """Fully convolutional network (Long et al. 2015) on a torchvision AlexNet or VGG16 backbone.

    Layout (dotted names usable as explainer layers)::

        normalize              ImageNet mean/std input normalisation (``normalize=True``, 3 channels)
        backbone.features      torchvision's ``alexnet(...).features`` / ``vgg16(...).features`` (indices as
                               in torchvision: e.g. ``backbone.features.29`` = VGG16's last ReLU (stride 16),
                               ``backbone.features.11`` = AlexNet's last ReLU (stride 16))
        head.fc6, head.relu6, head.drop6, head.fc7, head.relu7, head.drop7
                               the convolutionalised fully connected layers (stride 32)
        head.score_fr          1x1 class scores at stride 32
        score_pool4            1x1 class scores from the stride-16 pool (FCN-8s only)
        score_pool3            1x1 class scores from the stride-8 pool (FCN-8s only)

    FCN-32s upsamples ``score_fr`` to the input size; FCN-8s fuses it with ``score_pool4`` (stride 16) and
    ``score_pool3`` (stride 8) before upsampling. The skip scorers start at zero, as in the paper, so
    training starts from the 32s prediction. Upsampling is bilinear (fixed), resized to each skip's exact
    size, so any input size works (AlexNet needs at least 63x63, VGG16 at least 32x32). Usual CAM layers:
    ``head.relu7`` (stride 32), ``backbone.features.29`` (VGG16) / ``backbone.features.11`` (AlexNet).

    Differences from the paper, for CPU training: ``fc6`` is a 3x3 (not 7x7) convolution with
    ``head_width`` (not 4096) channels, ``fc7`` is 1x1 with ``head_width`` channels, no 100-pixel input
    padding / cropping.

    Args:
        num_classes: output channels ``N`` (background included).
        head: ``"8s"`` or ``"32s"``.
        backbone: ``"alexnet"`` or ``"vgg16"``.
        in_channels: input channels; must be 3 unless the first convolution is replaced (done here when
            ``in_channels != 3``: a fresh first convolution with the same geometry).
        head_width: channels of fc6/fc7 (default 256 for AlexNet, 512 for VGG16).
        dropout: dropout after fc6 and fc7 (train mode only).
        backbone_weights: ``None`` (random init, default: nothing is downloaded), a torchvision weights enum
            or name (may download), or a state dict of the torchvision model or of its ``features``.
        normalize: apply ImageNet mean/std normalisation inside the model, so inputs are images in
            ``[0, 1]`` (what torchvision's pretrained weights expect; it also helps VGG16, which has no
            BatchNorm, train from scratch). Identity when ``in_channels != 3``.

    Shapes:
        ``forward``: ``(B, C, H, W)`` -> ``(B, N, H, W)`` logits.
    """

    def __init__(
        self,
        num_classes: int = 4,
        head: str = "8s",
        backbone: str = "alexnet",
        in_channels: int = 3,
        head_width: int | None = None,
        dropout: float = 0.0,
        backbone_weights: Any = None,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes)
        check_int("in_channels", in_channels)
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; valid backbones: {', '.join(BACKBONES)}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}")
        if head_width is None:
            head_width = _HEAD_WIDTH[backbone]
        check_int("head_width", head_width)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.areacam_spec: dict[str, Any] = {
            "name": "fcn",
            "kwargs": dict(
                num_classes=num_classes,
                head=head,
                backbone=backbone,
                in_channels=in_channels,
                head_width=head_width,
                dropout=dropout,
                normalize=normalize,
            ),
        }
        self.num_classes = num_classes
        self.head_type = head
        self.backbone_name = backbone
        self.in_channels = in_channels
        self.min_size = 63 if backbone == "alexnet" else 32

        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD) if normalize and in_channels == 3 else nn.Identity()
        features = _build_backbone(backbone, backbone_weights)
        if in_channels != 3:
            first = features[0]
            assert isinstance(first, nn.Conv2d)
            features[0] = nn.Conv2d(
                in_channels,
                first.out_channels,
                _pair(first.kernel_size),
                stride=_pair(first.stride),
                padding=first.padding if isinstance(first.padding, str) else _pair(first.padding),
            )
        self.backbone = _Backbone(features)
        pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
        # The last three pools have strides 8, 16 and 32 in both AlexNet and VGG16.
        self._pool3, self._pool4, self._pool5 = pools[-3:]
        features.tap_indices = (self._pool3, self._pool4) if head == "8s" else ()
        convs = [m for m in features if isinstance(m, nn.Conv2d)]
        c_pool3 = [m for m in list(features)[: self._pool3] if isinstance(m, nn.Conv2d)][-1].out_channels
        c_pool4 = [m for m in list(features)[: self._pool4] if isinstance(m, nn.Conv2d)][-1].out_channels
        c_pool5 = convs[-1].out_channels

        self.head = nn.Sequential(
            OrderedDict(
                fc6=nn.Conv2d(c_pool5, head_width, 3, padding=1),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout2d(dropout),
                fc7=nn.Conv2d(head_width, head_width, 1),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout2d(dropout),
                score_fr=nn.Conv2d(head_width, num_classes, 1),
            )
        )
        if head == "8s":
            self.score_pool4 = nn.Conv2d(c_pool4, num_classes, 1)
            self.score_pool3 = nn.Conv2d(c_pool3, num_classes, 1)
            for m in (self.score_pool4, self.score_pool3):
                nn.init.zeros_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, num_classes, H, W)`` logits."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"FCN expects a (B, {self.in_channels}, H, W) tensor, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"FCN with backbone {self.backbone_name!r} needs inputs of at least "
                f"{self.min_size}x{self.min_size}, got {tuple(x.shape[-2:])}"
            )
        size = x.shape[-2:]
        features = self.backbone.features
        score = self.head(features(self.normalize(x)))
        if self.head_type == "8s":
            pool3, pool4 = features.taps[self._pool3], features.taps[self._pool4]
            features.taps = {}
            s4 = self.score_pool4(pool4)
            score = s4 + F.interpolate(score, size=s4.shape[-2:], mode="bilinear", align_corners=False)
            s3 = self.score_pool3(pool3)
            score = s3 + F.interpolate(score, size=s3.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(score, size=size, mode="bilinear", align_corners=False)


def unet(
    num_classes: int = 4,
    in_channels: int = 3,
    encoder_name: str = "resnet18",
    **kwargs: Any,
) -> nn.Module:
    """``segmentation_models_pytorch.Unet`` with random init (``encoder_weights=None``: no download).

    Layers (resnet encoders): ``encoder.layer1..layer4`` (``encoder.layer4``: stride 32, the usual CAM
    layer), ``decoder.blocks.0..4``, ``segmentation_head``. Inputs must be multiples of 32.

    Shapes:
        ``forward``: ``(B, C, H, W)`` -> ``(B, num_classes, H, W)`` logits.
    """
    smp = require("segmentation_models_pytorch", "models.create('unet')")

    check_int("num_classes", num_classes)
    check_int("in_channels", in_channels)
    if "encoder_weights" in kwargs and kwargs["encoder_weights"] is not None:
        raise ValueError(
            f"encoder_weights must be None (no downloads), got {kwargs['encoder_weights']!r}; "
            "load a state dict afterwards instead"
        )
    kwargs.pop("encoder_weights", None)
    model = smp.Unet(
        encoder_name=encoder_name,
        encoder_weights=None,
        in_channels=in_channels,
        classes=num_classes,
        **kwargs,
    )
    model.areacam_spec = {
        "name": "unet",
        "kwargs": dict(num_classes=num_classes, in_channels=in_channels, encoder_name=encoder_name, **kwargs),
    }
    return model
