"""The cases the demo's quality section scores: each model with its held-out images, exact masks (or the
VAE's boxes), the explainers compared, the randomisation cascade and the deletion baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

import areacam as ac
from areacam import metrics
from areacam.app.demo.common import Context
from areacam.app.demo.settings import BOXES
from areacam.core.explainer import Explainer

__all__ = [
    "BASELINES",
    "CASCADES",
    "COMPARED",
    "EXTRA_LAYERS",
    "SANITY_TOP",
    "TITLES",
    "Case",
    "Row",
    "make_case",
    "samples",
]


#: The explainers compared: name -> ``(model, layer) -> explainer``.
COMPARED: dict[str, Callable[[nn.Module, str], Explainer]] = {
    "Grad-CAM": lambda m, layer: ac.GradCAM(m, layer, layout="nchw"),
    "Grad-CAM++": lambda m, layer: ac.GradCAMPlusPlus(m, layer, layout="nchw"),
    "HiResCAM": lambda m, layer: ac.HiResCAM(m, layer, layout="nchw"),
    "LayerCAM": lambda m, layer: ac.LayerCAM(m, layer, layout="nchw"),
    "Guided Grad-CAM": lambda m, layer: ac.GuidedGradCAM(m, layer, layout="nchw"),
    "Saliency": lambda m, layer: ac.Saliency(m),
    "Input x gradient": lambda m, layer: ac.InputXGradient(m),
    "Guided backprop": lambda m, layer: ac.GuidedBackprop(m),
}

#: Spearman to the trained model's maps at or above which a method fails the top-stage randomisation check.
SANITY_TOP = 0.7
#: What replaces removed pixels in deletion/insertion: blur for the shapes; black (the digits' background)
#: for the VAEs, whose reconstruction of a blurred digit hardly differs from the digit's (a tiny span
#: that makes normalised curves explode).
BASELINES = {"vae": "zero", "vaegan": "zero"}

#: Per model, the stages randomised one after the other from the output down (cascading).
CASCADES: dict[str, list[str]] = {
    "shapes_classifier": [
        "classifier",
        "features.block5",
        "features.block4",
        "features.block3",
        "features.block2",
        "features.block1",
    ],
    "unet": ["segmentation_head", "decoder", "encoder"],
    "fcn": ["score_pool3", "score_pool4", "head", "backbone"],  # 8s: score_pool3 is the last skip added
    "vae": ["decoder", "encoder"],
}


@dataclass
class Case:
    """One model to score: its CAM layer and groups of ``(x, targets, masks)`` sharing their targets."""

    key: str
    title: str
    target: str
    layer: str
    groups: list[tuple[torch.Tensor, list, torch.Tensor]]
    cascade: list[str]

    @property
    def count(self) -> int:
        """Images scored."""
        return sum(len(x) for x, _, _ in self.groups)


@dataclass
class Row:
    """The metrics of one method on one case, each averaged over images and targets."""

    model: str
    method: str
    values: dict[str, float | None] = field(default_factory=dict)  # None: undefined


def samples(ctx: Context, key: str, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The first ``count`` held-out images of ``key``'s data, labels and masks, balanced over classes."""
    data = ctx.data(key)
    x, y = data["x_test"], data["y_test"]
    masks = data.get("m_test")
    per_class = [torch.nonzero(y == c)[:, 0] for c in torch.unique(y)]
    order = torch.stack([idx[: min(len(i) for i in per_class)] for idx in per_class], 1).flatten()[:count]
    return x[order], y[order], None if masks is None else masks[order]


TITLES = {
    "shapes_classifier": "shapes classifier",
    "unet": "U-Net (ResNet-18)",
    "fcn": "FCN-8s (AlexNet)",
    "vae": "VAE (digits)",
    "vaegan": "VAE-GAN (digits)",
}
#: Layers measured beside the automatic candidates (the conventional picks the docs used to suggest).
EXTRA_LAYERS = {
    "shapes_classifier": [f"features.block{i}.relu" for i in (2, 3, 4, 5)],
    "unet": ["encoder.layer4", "encoder.layer2", "encoder.layer3", "decoder.blocks.1"],
    "fcn": ["backbone.features.1", "backbone.features.4", "backbone.features.11", "head.relu7"],
}


def make_case(ctx: Context, key: str, count: int, layer: str = "") -> Case:
    """Model ``key`` on ``count`` held-out images: shapes models with their exact masks, VAEs with boxes."""
    x, y, m = samples(ctx, key, count)
    cascade = CASCADES.get(key, [])
    if key in ("shapes_classifier", "unet", "fcn"):
        if m is None:
            raise ValueError(f"{key}'s data has no masks")
        shape = m > 0
        if key == "shapes_classifier":
            return Case(key, TITLES[key], "Class(true shape)", layer, [(x, [ac.Class(y.tolist())], shape)], cascade)
        groups = [(x[y == c], [ac.Segment(int(c) + 1)], shape[y == c]) for c in torch.unique(y)]
        return Case(key, TITLES[key], "Segment(true shape)", layer, groups, cascade)
    masks = metrics.boxes_to_masks([list(BOXES)] * len(x), x.shape[-2:])
    return Case(
        key, TITLES[key], f"Area(box) x {len(BOXES)}", layer, [(x, [ac.Area(box=b) for b in BOXES], masks)], cascade
    )
