"""The segmentation-errors panel: what drove the false positives of the shapes FCN and U-Net.

Both segmenters train on plain shapes and are shown their test images with a distractor added (a
background-labelled pentagon in some images, ``areacam.data.shapes(distractor=...)``; the shapes and
masks are unchanged), so their false positives are real ones. Training on the distractor images
instead cost the U-Net most of its accuracy in the demo's epochs (mean IoU 0.50 after 8 epochs
against 0.95 on plain shapes). Each test image's
largest false positive (the shape class painted most where the truth is another class) is explained
with :class:`~areacam.FalsePositive` at the segmenter's measured layer; the caption reports, over every
test image with one, the share of the map inside the error region against the region's share of the
image, and how much of the error lies on the distractor.
"""

from __future__ import annotations

import numpy as np
import torch

import areacam as ac
from areacam.app.demo.common import Context, Figure, label_colors
from areacam.app.demo.layer_choice import measured_layer
from areacam.app.demo.segmentation import TITLES
from areacam.data import SHAPE_CLASSES
from areacam.models.datasets import DISTRACTOR_SHARE
from areacam.viz.images import overlay, panel_grid, to_rgb

__all__ = ["ErrorStats", "false_positive_maps", "segmentation_errors"]

SHOWN = 2  # images per segmenter in the figure: the two largest false positives


class ErrorStats:
    """Measured over the test images with a false positive: the maps ``(N, H, W)`` and their regions."""

    def __init__(self, maps: torch.Tensor, regions: torch.Tensor, on_distractor: torch.Tensor):
        self.maps, self.regions, self.on_distractor = maps, regions, on_distractor

    @property
    def inside(self) -> float:
        """Mean share of each map's mass inside its error region (maps with no mass left out)."""
        mass = self.maps.flatten(1).sum(1)
        share = (self.maps * self.regions).flatten(1).sum(1) / mass.clamp(min=1e-12)
        return float(share[mass > 0].mean()) if bool((mass > 0).any()) else 0.0

    @property
    def area(self) -> float:
        """Mean share of the image the error regions cover (what a uniform map would put inside)."""
        return float(self.regions.flatten(1).float().mean(1).mean())

    @property
    def distractor_share(self) -> float:
        """Share of all false-positive pixels that lie on a distractor."""
        return float(self.on_distractor.sum() / self.regions.sum().clamp(min=1))


def false_positive_maps(
    model: torch.nn.Module, layer: str, x: torch.Tensor, truth: torch.Tensor, pred: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Grad-CAM of each image's largest false positive, given the model's predicted labels ``pred``
    ``(B, H, W)``: ``maps (N, H, W)``, ``regions (N, H, W)`` bool, ``classes (N,)`` and the rows of ``x``
    that have a false positive (the N images)."""
    wrong = torch.stack([(pred == c) & (truth != c) for c in range(1, 1 + len(SHAPE_CLASSES))], 1)  # (B, 3, H, W)
    sizes = wrong.flatten(2).sum(2)
    worst = sizes.argmax(1)
    rows = [b for b in range(x.shape[0]) if int(sizes[b].max()) > 0]
    maps = torch.zeros(len(rows), *x.shape[-2:])
    for cls in range(len(SHAPE_CLASSES)):
        picked = [i for i, b in enumerate(rows) if int(worst[b]) == cls]
        if picked:
            index = [rows[i] for i in picked]
            expl = ac.GradCAM(model, layer, layout="nchw")(x[index], ac.FalsePositive(cls + 1, truth[index]))
            maps[picked] = expl.maps[:, 0].float().cpu()
    regions = wrong[rows, worst[rows]] if rows else wrong[:0, 0]
    return maps, regions.cpu(), worst[rows] + 1, rows


def segmentation_errors(ctx: Context) -> list[Figure]:
    """Input | truth | prediction | false-positive region | its Grad-CAM, for the FCN and the U-Net."""
    from areacam.models.train import load_data

    panels: list[list] = []
    titles: list[list[str]] = []
    lines: list[str] = []
    for key in ("fcn", "unet"):
        model, data, settings = ctx.model(key), ctx.data(key), ctx.settings(key)
        size, n_train, n_test = settings["size"], settings.get("n_train"), settings.get("n_test")
        x = load_data("shapes-distractor", size, n_train, n_test)["x_test"]  # the test shapes, plus distractors
        truth = data["m_test"]  # the same shapes and masks: a distractor is background
        distractor = (x != data["x_test"]).any(1)  # (N, H, W): the pixels the distractor painted
        layer = measured_layer(ctx, key).layer
        with torch.no_grad():
            pred = model.eval()(x).argmax(1)
        maps, regions, classes, rows = false_positive_maps(model, layer, x, truth, pred)
        stats = ErrorStats(maps, regions, distractor[rows] & regions)
        order = regions.flatten(1).sum(1).argsort(descending=True)[:SHOWN].tolist()
        rgb = to_rgb(x[rows]) if rows else np.zeros((0, 1, 1, 3), dtype=np.uint8)
        for i in order:
            panels.append(
                [
                    rgb[i],
                    label_colors(truth[rows[i]]),
                    label_colors(pred[rows[i]]),
                    label_colors(regions[i].long() * int(classes[i])),
                    overlay(rgb[i], maps[i]),
                ]
            )
            name = SHAPE_CLASSES[int(classes[i]) - 1]
            titles.append(
                [
                    f"{key}: input",
                    "ground truth",
                    "prediction",
                    f"false {name} ({int(regions[i].sum())} px)",
                    f"FalsePositive({int(classes[i])})",
                ]
            )
        if not rows:
            lines.append(f"{TITLES[key]} makes no false positive on its {x.shape[0]} test images")
            continue
        lines.append(
            f"{TITLES[key]} at {layer}: {int(distractor.flatten(1).any(1).sum())} of {x.shape[0]} test images "
            f"hold a distractor and {len(rows)} have a false positive, "
            f"{stats.distractor_share:.0%} of their false-positive pixels lie on a distractor; the map puts "
            f"{stats.inside:.0%} of its mass inside the error region, which covers {stats.area:.1%} of the image"
        )
    if not panels:
        raise RuntimeError("neither segmenter makes a false positive on the test images: nothing to explain")
    file = "segment_errors.png"
    panel_grid(panels, path=ctx.path(file), titles=titles)
    return [
        Figure(
            file,
            "segmentation",
            "Segmentation errors: what drove the false positives",
            "Both segmenters trained on plain shapes; here their test images also hold, where it fits, a "
            f"distractor (drawn for {DISTRACTOR_SHARE:.0%} of them) they never saw: a pentagon labelled "
            "background. Per segmenter, the two test images with the largest false positive: the pixels "
            "painted as a shape class whose truth is another class (fourth panel), and Grad-CAM of "
            "ac.FalsePositive(cls, truth), the summed logit of those pixels, at the measured layer. Measured "
            "over all test images with a false positive: " + "; ".join(lines) + ".",
        )
    ]
