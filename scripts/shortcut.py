"""The shortcut experiment: a spurious corner marker, and whether a loss on the explanation recovers the shape.

Shapes (``ac.data.shapes``, 3 classes, colour independent of the class) get a 4x4 patch in the top-left
corner. In the training set and the "marker" test set its colour is the class's; in the "shuffled" test
set it is a random class's. The demo classifier (``models.create("classifier")``, the quick demo's
width 8) is trained plainly and with each loss of ``ac.losses``, the allowed region being the shape's mask:

- ``outside_mass``: Grad-CAM (``features.block3.relu``, 8x8) of the true class, its share outside the shape;
- ``outside_gradient``: Ross et al.'s RRR on the input gradient of the summed log-probabilities;
- ``mask_error``: GAIN's external supervision, the Grad-CAM map against the shape's mask;
- ``gain``: GAIN's two terms together (Li et al. 2018): ``mask_error`` plus attention mining, the true
  class's probability on the image with the map's region erased (``ac.losses.attention_mining``).

Printed: accuracy on both test sets, Grad-CAM's pointing game on the shape (true class, shuffled test
set), the share of Grad-CAM's mass on the marker, and the training time. With ``--figure PATH``, a
picture of Grad-CAM on the same shuffled test images after each training.

    python scripts/shortcut.py [--epochs 8] [--n-train 1000] [--control] [--figure docs/figures/shortcut.png]
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

SIZE, PATCH, LAYER = 32, 4, "features.block3.relu"
#: Loss -> (weight, function of (model, x, y, allowed) returning the (B, K) penalty).
Penalty = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


def marked_shapes(n: int, random_state: int, shuffled: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(x, y, allowed)``: shapes with the corner marker; ``allowed`` is the shape's mask ``(n, S, S)`` bool."""
    x, y, masks = ac.data.shapes(n, size=SIZE, random_state=random_state)
    generator = torch.Generator().manual_seed(random_state + 1)
    marker = torch.randint(0, 3, (n,), generator=generator) if shuffled else y
    colours = torch.tensor(ac.data.SHAPE_COLORS[:3])[marker]  # red, green, blue for classes 0, 1, 2
    x[:, :, :PATCH, :PATCH] = colours[:, :, None, None]
    allowed = masks > 0
    allowed[:, :PATCH, :PATCH] = False
    return x, y, allowed


def outside_mass(model: nn.Module, x: Tensor, y: Tensor, allowed: Tensor) -> Tensor:
    maps = ac.GradCAM(model, LAYER, create_graph=True)(x, ac.Class(y.tolist())).maps
    return ac.losses.outside_mass(maps, allowed)


def outside_gradient(model: nn.Module, x: Tensor, y: Tensor, allowed: Tensor) -> Tensor:
    log_probs = ac.Score(lambda logits: logits.log_softmax(1).sum(1))
    grads = ac.Saliency(model, create_graph=True)(x, log_probs).raw
    return ac.losses.outside_gradient(grads, allowed)


def mask_error(model: nn.Module, x: Tensor, y: Tensor, allowed: Tensor) -> Tensor:
    maps = ac.GradCAM(model, LAYER, create_graph=True)(x, ac.Class(y.tolist())).maps
    return ac.losses.mask_error(maps, allowed)


def gain(model: nn.Module, x: Tensor, y: Tensor, allowed: Tensor) -> Tensor:
    maps = ac.GradCAM(model, LAYER, create_graph=True)(x, ac.Class(y.tolist())).maps
    probability = ac.Score(lambda logits: logits.softmax(1)[torch.arange(len(y)), y.to(logits.device)])
    return ac.losses.mask_error(maps, allowed) + ac.losses.attention_mining(model, x, maps, probability)


#: The weights: outside_mass and mask_error are in [0, 1] and weigh like the cross-entropy (gain, mask_error plus the
#: mining term, in [0, 2]). RRR's weight was picked from 10, 100, 300, 1000 (docs/guide-training.md): 10 changes
#: nothing, 300 and more stop the classifier from learning the training set.
LOSSES: dict[str, tuple[float, Penalty | None]] = {
    "plain": (0.0, None),
    "outside_mass": (1.0, outside_mass),
    "outside_gradient": (100.0, outside_gradient),
    "mask_error": (1.0, mask_error),
    "gain": (1.0, gain),
}


def classifier() -> nn.Module:
    return models.create("classifier", num_classes=3, in_channels=3, width=8, hidden=64, input_size=SIZE)


def step(model: nn.Module, optimiser: torch.optim.Optimizer, batch: tuple[Tensor, Tensor, Tensor], loss: str) -> float:
    """One training step with the cross-entropy plus ``loss``'s weighted penalty; returns the total loss."""
    x, y, allowed = batch
    weight, penalty = LOSSES[loss]
    total = F.cross_entropy(model(x), y)
    if penalty is not None:
        total = total + weight * penalty(model, x, y, allowed).mean()
    optimiser.zero_grad()
    total.backward()
    optimiser.step()
    return float(total.detach())


def train(loss: str, data: tuple[Tensor, Tensor, Tensor], epochs: int, batch_size: int = 32) -> tuple[nn.Module, float]:
    """A fresh classifier trained with ``loss``; returns it and the training time in seconds."""
    torch.manual_seed(0)
    model = classifier().train()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(data[0]))
        for first in range(0, len(order), batch_size):
            index = order[first : first + batch_size]
            step(model, optimiser, tuple(part[index] for part in data), loss)  # type: ignore[arg-type]
    return model.eval(), time.perf_counter() - start


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def localisation(model: nn.Module, x: Tensor, y: Tensor, allowed: Tensor) -> tuple[float, float, Tensor]:
    """Grad-CAM's pointing game on the shape, its mean share on the marker, and the maps ``(B, 1, S, S)``."""
    maps = ac.GradCAM(model, LAYER)(x, ac.Class(y.tolist())).maps
    hits = ac.metrics.pointing_game(maps, allowed)
    corner = torch.zeros_like(allowed)
    corner[:, :PATCH, :PATCH] = True
    on_marker = 1 - ac.losses.outside_mass(maps, corner)
    return float(hits.mean()), float(on_marker.mean()), maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--losses", nargs="+", default=list(LOSSES), choices=list(LOSSES))
    parser.add_argument("--control", action="store_true", help="also train plainly without the shortcut")
    parser.add_argument("--weight", nargs="*", default=[], metavar="LOSS=W", help="override a loss's weight")
    parser.add_argument("--figure", default=None, help="save Grad-CAM on 6 shuffled test images per loss here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for item in args.weight:
        name, _, value = item.partition("=")
        LOSSES[name] = (float(value), LOSSES[name][1])
    train_set = marked_shapes(args.n_train, 0, shuffled=False)
    marker_test = marked_shapes(args.n_test, 10_000, shuffled=False)
    shuffled_test = marked_shapes(args.n_test, 10_000, shuffled=True)
    rows, panels = [], []
    plain_time = None
    runs = [(loss, train_set) for loss in args.losses]
    if args.control:
        runs.append(("plain, marker shuffled in training", marked_shapes(args.n_train, 0, shuffled=True)))
    for name, data in runs:
        loss = name.split(",")[0]
        model, seconds = train(loss, data, args.epochs)
        plain_time = seconds if loss == "plain" else plain_time
        pointing, on_marker, maps = localisation(model, *shuffled_test)
        overhead = f"{seconds / plain_time:.1f}x" if plain_time else "-"
        rows.append(
            f"| {name} | {LOSSES[loss][0]:g} | {accuracy(model, *marker_test[:2]):.1%} | "
            f"{accuracy(model, *shuffled_test[:2]):.1%} | {pointing:.1%} | {on_marker:.1%} | "
            f"{seconds:.0f} s ({overhead}) |"
        )
        panels.append((name.replace(", ", "\n"), maps[:6, 0]))
        print(rows[-1], flush=True)
    print(
        "\n| training | weight | accuracy, marker test | accuracy, shuffled test | pointing game on the shape "
        "| Grad-CAM mass on the marker | training time |\n| --- | --- | --- | --- | --- | --- | --- |"
    )
    print("\n".join(rows))
    if args.figure:
        images = ac.viz.images.to_rgb(shuffled_test[0][:6])
        grid = [[image, *(ac.overlay(image, maps[i]) for _, maps in panels)] for i, image in enumerate(images)]
        truth = [f"{ac.data.SHAPE_CLASSES[int(c)]}" for c in shuffled_test[1][:6]]
        ac.viz.images.panel_grid(
            grid, col_titles=["input", *(name for name, _ in panels)], row_titles=truth, path=args.figure
        )
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
