"""Which method to trust: every explainer x metric on models with exact ground truth, and the sanity check.

The shapes models (classifier, U-Net, FCN) come with exact object masks; the digits VAE is explained
for boxes of its reconstruction, scored against the same boxes. For each model and method:

- faithfulness: deletion and insertion AUC of the target's score (:func:`areacam.metrics.deletion`),
  beside the AUC of a random pixel ranking (the chance level);
- localisation: pointing game and relevance mass against the masks, beside the masks' share of the
  image (what a map without information scores on average);
- sanity (Adebayo et al. 2018): Spearman correlation of the map with the map of the same model after
  cascading randomisation of its top stage and of all stages (near 1: the map ignores the weights).

:func:`measure` computes the table (the demo stage and ``scripts/quality_table.py`` share it); the cases
are in :mod:`~.cases`, the layer choice in :mod:`~.layer_choice`, the tables in :mod:`~.trust_tables`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

import areacam as ac
from areacam import metrics
from areacam.app.demo.cases import BASELINES, CASCADES, COMPARED, Case, Row, make_case, samples
from areacam.app.demo.common import Context, Figure
from areacam.app.demo.layer_choice import measured_layer
from areacam.app.demo.trust_tables import html_table, trust_figure, which_method
from areacam.core.explainer import Explainer

__all__ = ["cases", "measure", "randomisation_strip", "trust_table"]


def cases(ctx: Context, count: int) -> list[Case]:
    """The scored cases: shapes classifier, U-Net, FCN (exact masks) and the digits VAE (boxes), each at
    its measured Grad-CAM layer."""
    return [make_case(ctx, key, count, measured_layer(ctx, key).layer) for key in CASCADES]


def _factory(build: Callable[[nn.Module, str], Explainer], layer: str) -> Callable[[nn.Module], Explainer]:
    """``model -> explainer`` at ``layer``, for the randomisation test (which explains model copies)."""
    return lambda model: build(model, layer)


def _mean(values: list[torch.Tensor], valid: list[torch.Tensor] | None = None) -> float | None:
    """The mean of the valid values; ``None`` (undefined) where there is none."""
    flat = torch.cat([v.flatten().float() for v in values])
    if valid is not None:
        keep = torch.cat([v.flatten() for v in valid])
        flat = flat[keep]
    return float(flat.mean()) if flat.numel() else None


def measure(ctx: Context, case: Case, steps: int = 10, methods: dict | None = None) -> list[Row]:
    """Every method's metrics on ``case``; the first row is the chance level (random ranking / mask share)."""
    model = ctx.model(case.key)
    methods = COMPARED if methods is None else methods
    chance = Row(case.key, "chance")
    rows = []
    sanity_group = None
    for i, (name, build) in enumerate(methods.items()):
        explainer = build(model, case.layer)
        acc: dict[str, list] = {}
        for x, targets, masks in case.groups:
            maps = explainer(x, targets).maps
            dele, ins = (
                curve(
                    model,
                    x,
                    targets,
                    maps,
                    steps=steps,
                    baseline=BASELINES.get(case.key, "blur"),
                    batch_size=64,
                    random=i == 0,
                    progress=False,
                )
                for curve in (metrics.deletion, metrics.insertion)
            )
            acc.setdefault("deletion", []).append((dele.auc, dele.defined))
            acc.setdefault("insertion", []).append((ins.auc, ins.defined))
            with warnings.catch_warnings():  # a constant map scores 0: no information, already counted so
                warnings.simplefilter("ignore", RuntimeWarning)
                acc.setdefault("pointing_game", []).append(metrics.pointing_game(maps, masks))
                acc.setdefault("relevance_mass", []).append(metrics.relevance_mass(maps, masks))
            if i == 0:
                acc.setdefault("deletion_random", []).append((dele.random_auc, dele.defined))
                acc.setdefault("insertion_random", []).append((ins.random_auc, ins.defined))
                share = masks.flatten(-2).float().mean(-1)
                share = (share[:, None] if share.dim() == 1 else share).expand(maps.shape[:2])
                acc.setdefault("mask_share", []).append(share)
            if sanity_group is None:  # the sanity check on one group (it copies the model): the one
                flat = [float(explainer(gx, gt).degenerate.float().mean()) for gx, gt, _ in case.groups]
                sanity_group = case.groups[int(np.argmin(flat))][0]  # with the fewest blank maps
            if x is sanity_group:
                sanity = metrics.randomisation(
                    _factory(build, case.layer), model, x, targets, layers=case.cascade, progress=False
                )
                # A blank map (before or after) carries no information: left out, not counted as changed.
                for key, step in (("spearman_top", 0), ("spearman_all", -1)):
                    valid = ~(sanity.degenerate[0] | sanity.degenerate[step + 1 if step == 0 else -1])
                    acc.setdefault(key, []).append(sanity.spearman[step][valid])
        row = Row(case.key, name)
        for key in ("deletion", "insertion"):
            row.values[key] = _mean([a for a, _ in acc[key]], [v for _, v in acc[key]])
        for key in ("pointing_game", "relevance_mass", "spearman_top", "spearman_all"):
            row.values[key] = _mean(acc[key])
        if i == 0:
            chance.values = {
                "deletion": _mean([a for a, _ in acc["deletion_random"]], [v for _, v in acc["deletion_random"]]),
                "insertion": _mean([a for a, _ in acc["insertion_random"]], [v for _, v in acc["insertion_random"]]),
                "pointing_game": _mean(acc["mask_share"]),
                "relevance_mass": _mean(acc["mask_share"]),
            }
        rows.append(row)
    return [chance, *rows]


def randomisation_strip(ctx: Context, layer: str, path, count: int) -> dict[str, list[float]]:
    """Adebayo et al.'s cascading strip on the shapes classifier for Grad-CAM and guided backprop."""
    from matplotlib.figure import Figure as MplFigure

    from areacam.viz.images import overlay, save_figure, to_rgb

    model = ctx.model("shapes_classifier")
    x, y, _ = samples(ctx, "shapes_classifier", count)
    target = ac.Class(y.tolist())
    cascade = CASCADES["shapes_classifier"]
    picks = {"Grad-CAM": COMPARED["Grad-CAM"], "Guided backprop": COMPARED["Guided backprop"]}
    results = {
        name: metrics.randomisation(_factory(build, layer), model, x, target, layers=cascade, progress=False)
        for name, build in picks.items()
    }
    rgb = to_rgb(x[:1])[0]
    steps = len(cascade) + 1
    fig = MplFigure(figsize=(1.5 * steps, 1.5 * len(picks) + 2.2), layout="constrained")
    grid = fig.add_gridspec(len(picks) + 1, steps, height_ratios=[1] * len(picks) + [1.4])
    for r, (name, result) in enumerate(results.items()):
        for s in range(steps):
            ax = fig.add_subplot(grid[r, s])
            ax.imshow(overlay(rgb, result.maps[s, 0, 0].numpy()))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("trained" if s == 0 else f"+ {cascade[s - 1].split('.')[-1]}", fontsize=7)
            if s == 0:
                ax.set_ylabel(name, fontsize=8)
    ax = fig.add_subplot(grid[-1, :])
    for name, result in results.items():
        ax.plot(np.arange(1, steps), result.spearman.flatten(1).mean(1).numpy(), marker="o", label=name)
    ax.set_xticks(np.arange(1, steps), [f"+ {c.split('.')[-1]}" for c in cascade], fontsize=7)
    ax.set_ylim(-0.2, 1.05)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylabel(f"Spearman to trained\n(mean of {len(x)} images)", fontsize=7)
    ax.legend(fontsize=7)
    save_figure(fig, path)
    return {name: result.spearman.flatten(1).mean(1).tolist() for name, result in results.items()}


def trust_table(ctx: Context) -> list[Figure]:
    """The "Which method to trust" section: the explainer x metric table and the randomisation strip."""
    start = time.perf_counter()
    count, steps = (6, 5) if ctx.quick else (12, 10)
    results = [(scored, measure(ctx, scored, steps=steps)) for scored in cases(ctx, count)]
    layers = {scored.key: scored.layer for scored, _ in results}
    ctx.cache["trust"] = results
    trust_figure(results, ctx.path("trust_metrics.png"))
    rho = randomisation_strip(ctx, layers["shapes_classifier"], ctx.path("randomisation_classifier.png"), count)
    ctx.log.append(f"which method to trust: {time.perf_counter() - start:.1f} s")
    cascade = CASCADES["shapes_classifier"]
    said = which_method(results)
    return [
        Figure(
            "trust_metrics.png",
            "quality",
            "Every explainer x metric",
            f"Each model's held-out images ({count} per model), every method at the same CAM layer (picked by "
            "measurement, see the run log). Faithfulness: deletion / insertion AUC of the target's score as "
            f"the map's top pixels are blurred away / restored ({steps} steps; dashed: a random ranking). "
            "Localisation: pointing game and relevance mass against the exact shape masks (VAE: the "
            "explained box), chance = the mask's share of the image. Sanity: Spearman correlation with the "
            "maps after cascading re-initialisation of the top stage / of every stage (segmenters: on the "
            "images of the first shape class). " + " ".join(said),
            table=html_table(results),
        ),
        Figure(
            "randomisation_classifier.png",
            "quality",
            "Sanity check: cascading randomisation",
            f"Shapes classifier, Class(true shape): the map of the trained model, then after re-initialising "
            f"{', '.join(cascade)} one after the other (Adebayo et al. 2018). Grad-CAM at "
            f"{layers['shapes_classifier']} keeps Spearman {rho['Grad-CAM'][0]:.2f} to its trained map once "
            f"the dense head is random and {rho['Grad-CAM'][-1]:.2f} once everything is; guided backprop keeps "
            f"{rho['Guided backprop'][0]:.2f} and {rho['Guided backprop'][-1]:.2f}: "
            + (
                "its maps barely depend on the head's weights, an edge detector more than an explanation."
                if rho["Guided backprop"][0] > 0.5
                else "here its maps do change."
            ),
        ),
    ]
