"""The CAM layer of each demo model, picked by measurement on held-out images (cached on the context)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from areacam import metrics
from areacam.app.demo.cases import BASELINES, CASCADES, COMPARED, EXTRA_LAYERS, make_case
from areacam.app.demo.common import Context, Figure

__all__ = ["LayerChoice", "measured_layer", "pick_layers"]


@dataclass
class LayerChoice:
    """The CAM layer of one model picked by measurement, and the ranking it came from."""

    key: str
    layer: str
    metric: str
    scores: dict[str, float]
    degenerate: dict[str, float]
    count: int

    def others(self, names: list[str]) -> list[str]:
        """Those of ``names`` that were measured, other than the chosen layer."""
        return [name for name in names if name in self.scores and name != self.layer]

    def describe(self, short: bool = False) -> str:
        """``"decoder.blocks.3 (pointing game 0.94 on 32 held-out images; encoder.layer4: 0.05)"``."""
        name = self.metric.replace("_", " ")
        worst = (
            min(self.scores, key=self.scores.__getitem__)
            if self.metric != "deletion"
            else max(self.scores, key=self.scores.__getitem__)
        )
        text = f"{self.layer} ({name} {self.scores[self.layer]:.2f} on {self.count} held-out images"
        if short or worst == self.layer:
            return text + ")"
        return text + f"; worst candidate {worst}: {self.scores[worst]:.2f})"


def _rank(
    model: nn.Module, groups: list, metric: str, steps: int, extra: list[str], baseline: str = "blur"
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean ``metric`` of Grad-CAM at every candidate layer over the groups, weighted by their size, and
    the share of constant (blank) maps at each."""
    names = metrics.candidate_layers(model, groups[0][0])
    names += [name for name in _running(model, groups[0][0], extra) if name not in names]
    total: dict[str, float] = dict.fromkeys(names, 0.0)
    flat: dict[str, float] = dict.fromkeys(names, 0.0)
    count = 0
    for x, targets, masks in groups:
        ranking = metrics.rank_layers(
            model,
            x,
            targets,
            method=COMPARED["Grad-CAM"],
            metric=metric,
            masks=masks if metric != "deletion" else None,
            layers=names,
            steps=steps,
            baseline=baseline,
            progress=False,
        )
        for name, score, blank in zip(ranking.layers, ranking.scores.tolist(), ranking.degenerate.tolist()):
            total[name] += score * len(x)
            flat[name] += blank * len(x)
        count += len(x)
    return {name: value / count for name, value in total.items()}, {name: v / count for name, v in flat.items()}


def _running(model: nn.Module, x: torch.Tensor, names: list[str]) -> list[str]:
    """Those of ``names`` that exist in ``model`` and return a 4-D map on ``x`` (e.g. not ``encoder.layer4``
    of a depth-4 U-Net, which never runs)."""
    modules = dict(model.named_modules())
    seen: list[str] = []
    handles = [
        modules[name].register_forward_hook(
            lambda m, i, o, name=name: seen.append(name) if isinstance(o, torch.Tensor) and o.dim() == 4 else None
        )
        for name in names
        if name in modules
    ]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for handle in handles:
            handle.remove()
    return [name for name in names if name in seen]


def measured_layer(ctx: Context, key: str) -> LayerChoice:
    """Grad-CAM's layer for model ``key``, picked on held-out images (cached on ``ctx``).

    Shapes models: the candidate layer whose maps point into the object most often (pointing game
    against the exact masks); the VAEs, without ground truth: the most faithful one (lowest deletion
    AUC of the box targets). Candidates: :func:`areacam.metrics.candidate_layers` plus the layers the
    docs used to suggest (:data:`EXTRA_LAYERS`).
    """
    cached = ctx.cache.setdefault("layers", {})
    if key not in cached:
        start = time.perf_counter()
        measured = make_case(ctx, key, 16 if ctx.quick else 48)
        metric = "deletion" if key in ("vae", "vaegan") else "pointing_game"
        scores, blank = _rank(
            ctx.model(key), measured.groups, metric, 10, EXTRA_LAYERS.get(key, []), BASELINES.get(key, "blur")
        )
        best = (min if metric == "deletion" else max)(scores, key=scores.__getitem__)
        cached[key] = LayerChoice(key, best, metric, scores, blank, measured.count)
        ctx.log.append(
            f"Grad-CAM layer of {key} by {metric}: {cached[key].describe()} ({time.perf_counter() - start:.1f} s)"
        )
    return cached[key]


def pick_layers(ctx: Context) -> list[Figure]:
    """Demo stage: measure the Grad-CAM layer of every model the figures explain (no figure)."""
    for key in (*CASCADES, "vaegan"):
        measured_layer(ctx, key)
    return []
