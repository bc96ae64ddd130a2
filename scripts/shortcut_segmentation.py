"""The segmenter half of the shortcut experiment: does a region loss keep a segmenter off a distractor?

Shapes (``ac.data.shapes``, 32x32) with a distractor: a solid pentagon in another colour, labelled
background, in 60% of the training images and in every test image. A small U-Net (``models.create("unet")``,
ResNet-18 encoder of depth 4, the segmentation guide's) is trained plainly and with a loss on its
explanation. The explained score is the true class's logit summed over the whole image
(``ac.Score``), Grad-CAM at ``decoder.blocks.2`` (16x16), the allowed region the shape's mask:

- ``outside_mass``: the share of that map outside the shape;
- ``mask_error``: GAIN's external supervision, the map against the shape's mask.

Printed per training: mean IoU on the test set (4 classes), the share of distractor pixels painted as a
shape class (false positives on the distractor), Grad-CAM's mass on the distractor, and the training
time.

    python scripts/shortcut_segmentation.py [--epochs 6] [--n-train 600] [--n-test 200]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import areacam as ac
from areacam import models

SIZE, LAYER, CLASSES = 32, "decoder.blocks.2", 4
#: Loss -> (weight, penalty of (model, x, y, allowed) as (B, 1)).
Penalty = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


def distractor_shapes(n: int, random_state: int, share: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(x, labels, masks, distractor)``: shapes with distractors and the distractor's pixels ``(n, S, S)``."""
    x, y, masks = ac.data.shapes(n, size=SIZE, random_state=random_state, distractor=share)
    plain = ac.data.shapes(n, size=SIZE, random_state=random_state)[0]  # the same shapes, no distractor
    return x, y, masks, (x != plain).any(1)


def true_class_score(y: Tensor) -> ac.Score:
    """Each sample's true class logit (``1 + label``) summed over the image: ``(B,)``."""
    channels = 1 + y
    return ac.Score(lambda logits: logits[torch.arange(len(channels)), channels.to(logits.device)].flatten(1).sum(1))


def class_maps(model: nn.Module, x: Tensor, y: Tensor, create_graph: bool) -> Tensor:
    explainer = ac.GradCAM(model, LAYER, layout="nchw", create_graph=create_graph)
    return explainer(x, true_class_score(y)).maps


def outside_mass(model: nn.Module, x: Tensor, y: Tensor, allowed: Tensor) -> Tensor:
    return ac.losses.outside_mass(class_maps(model, x, y, True), allowed)


def mask_error(model: nn.Module, x: Tensor, y: Tensor, allowed: Tensor) -> Tensor:
    return ac.losses.mask_error(class_maps(model, x, y, True), allowed)


LOSSES: dict[str, tuple[float, Penalty | None]] = {
    "plain": (0.0, None),
    "outside_mass": (1.0, outside_mass),
    "mask_error": (1.0, mask_error),
}


def segmenter() -> nn.Module:
    return models.create(
        "unet", num_classes=CLASSES, encoder_name="resnet18", encoder_depth=4, decoder_channels=[32, 16, 16, 8]
    )


def train(loss: str, data: tuple[Tensor, ...], epochs: int, batch_size: int = 16) -> tuple[nn.Module, float]:
    """A fresh U-Net trained with the pixel cross-entropy plus ``loss``'s penalty; returns it and the seconds."""
    x, y, masks = data[:3]
    weight, penalty = LOSSES[loss]
    torch.manual_seed(0)
    model = segmenter().train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for first in range(0, len(order), batch_size):
            index = order[first : first + batch_size]
            total = F.cross_entropy(model(x[index]), masks[index])
            if penalty is not None:
                total = total + weight * penalty(model, x[index], y[index], masks[index] > 0).mean()
            optimiser.zero_grad()
            total.backward()
            optimiser.step()
    return model.eval(), time.perf_counter() - start


@torch.no_grad()
def predictions(model: nn.Module, x: Tensor) -> Tensor:
    return torch.cat([model(part).argmax(1) for part in x.split(50)])


def mean_iou(pred: Tensor, masks: Tensor) -> float:
    ious = []
    for c in range(CLASSES):
        union = ((pred == c) | (masks == c)).sum()
        if union:
            ious.append(float(((pred == c) & (masks == c)).sum() / union))
    return sum(ious) / len(ious)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=600)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set = distractor_shapes(args.n_train, 0, share=0.6)
    x, y, masks, distractor = distractor_shapes(args.n_test, 10_000, share=1.0)
    rows, plain_time = [], None
    for loss in args.losses:
        model, seconds = train(loss, train_set, args.epochs)
        plain_time = seconds if loss == "plain" else plain_time
        pred = predictions(model, x)
        painted = float(((pred > 0) & distractor).sum() / distractor.sum())
        maps = torch.cat([class_maps(model, xs, ys, False) for xs, ys in zip(x.split(50), y.split(50))])
        on_distractor = float((1 - ac.losses.outside_mass(maps, distractor)).mean())
        overhead = f"{seconds / plain_time:.1f}x" if plain_time else "-"
        rows.append(
            f"| {loss} | {LOSSES[loss][0]:g} | {mean_iou(pred, masks):.3f} | {painted:.1%} | {on_distractor:.1%} | "
            f"{seconds:.0f} s ({overhead}) |"
        )
        print(rows[-1], flush=True)
    print(
        "\n| training | weight | mean IoU, test | distractor pixels painted as a shape | Grad-CAM mass on the "
        "distractor | training time |\n| --- | --- | --- | --- | --- | --- |"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
