"""Which method to trust: every explainer x metric on models with exact ground truth, and the sanity check.

The shapes models (classifier, U-Net, FCN) come with exact object masks; the digits VAE is explained
for boxes of its reconstruction, scored against the same boxes. For each model and method:

- faithfulness: deletion and insertion AUC of the target's score (:func:`areacam.metrics.deletion`),
  beside the AUC of a random pixel ranking (the chance level);
- localisation: pointing game and relevance mass against the masks, beside the masks' share of the
  image (what a map without information scores on average);
- sanity (Adebayo et al. 2018): Spearman correlation of the map with the map of the same model after
  cascading randomisation of its top stage and of all stages (near 1: the map ignores the weights).

:func:`measure` computes the table (the demo stage and ``scripts/quality_table.py`` share it).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import areacam as ac
from areacam import metrics

from .common import Context, Figure

__all__ = ["CASCADES", "METHODS", "Case", "LayerChoice", "Row", "cases", "make_case", "markdown_table", "measure",
           "measured_layer", "pick_layers", "trust_table", "which_method"]

#: The explainers compared: name -> ``(model, layer) -> explainer``.
METHODS: dict[str, Callable[[nn.Module, str], object]] = {
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
    "shapes_classifier": ["classifier", "features.block5", "features.block4", "features.block3", "features.block2",
                          "features.block1"],
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


def _samples(ctx: Context, key: str, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The first ``count`` held-out images of ``key``'s data, labels and masks, balanced over classes."""
    data = ctx.data(key)
    x, y = data["x_test"], data["y_test"]
    masks = data.get("m_test")
    per_class = [torch.nonzero(y == c)[:, 0] for c in torch.unique(y)]
    order = torch.stack([idx[:min(len(i) for i in per_class)] for idx in per_class], 1).flatten()[:count]
    return x[order], y[order], None if masks is None else masks[order]


TITLES = {"shapes_classifier": "shapes classifier", "unet": "U-Net (ResNet-18)", "fcn": "FCN-8s (AlexNet)",
          "vae": "VAE (digits)", "vaegan": "VAE-GAN (digits)"}
#: Layers measured beside the automatic candidates (the conventional picks the docs used to suggest).
EXTRA_LAYERS = {
    "shapes_classifier": [f"features.block{i}.relu" for i in (2, 3, 4, 5)],
    "unet": ["encoder.layer4", "encoder.layer2", "encoder.layer3", "decoder.blocks.1"],
    "fcn": ["backbone.features.1", "backbone.features.4", "backbone.features.11", "head.relu7"],
}


def make_case(ctx: Context, key: str, count: int, layer: str = "") -> Case:
    """Model ``key`` on ``count`` held-out images: shapes models with their exact masks, VAEs with boxes."""
    from .autoencoder import BOXES

    x, y, m = _samples(ctx, key, count)
    cascade = CASCADES.get(key, [])
    if key == "shapes_classifier":
        return Case(key, TITLES[key], "Class(true shape)", layer, [(x, [ac.Class(y.tolist())], m > 0)], cascade)
    if key in ("unet", "fcn"):
        groups = [(x[y == c], [ac.Segment(int(c) + 1)], m[y == c] > 0) for c in torch.unique(y)]
        return Case(key, TITLES[key], "Segment(true shape)", layer, groups, cascade)
    masks = metrics.boxes_to_masks([list(BOXES)] * len(x), x.shape[-2:])
    return Case(key, TITLES[key], f"Area(box) x {len(BOXES)}", layer, [(x, [ac.Area(box=b) for b in BOXES], masks)],
                cascade)


def cases(ctx: Context, count: int) -> list[Case]:
    """The scored cases: shapes classifier, U-Net, FCN (exact masks) and the digits VAE (boxes), each at
    its measured Grad-CAM layer."""
    return [make_case(ctx, key, count, measured_layer(ctx, key).layer) for key in CASCADES]


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
    methods = METHODS if methods is None else methods
    chance = Row(case.key, "chance")
    rows = []
    sanity_group = None
    for i, (name, build) in enumerate(methods.items()):
        explainer = build(model, case.layer)
        acc: dict[str, list] = {}
        for x, targets, masks in case.groups:
            maps = explainer(x, targets).maps
            common = dict(steps=steps, batch_size=64, progress=False, random=i == 0,
                          baseline=BASELINES.get(case.key, "blur"))
            dele = metrics.deletion(model, x, targets, maps, **common)
            ins = metrics.insertion(model, x, targets, maps, **common)
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
                sanity = metrics.randomisation(lambda m, b=build: b(m, case.layer), model, x, targets,
                                               layers=case.cascade, progress=False)
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


# --------------------------------------------------------------------------------- layer choice


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
        worst = min(self.scores, key=self.scores.get) if self.metric != "deletion" else max(
            self.scores, key=self.scores.get)
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
        ranking = metrics.rank_layers(model, x, targets, method=METHODS["Grad-CAM"], metric=metric,
                                      masks=masks if metric != "deletion" else None, layers=names, steps=steps,
                                      baseline=baseline, progress=False)
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
        scores, blank = _rank(ctx.model(key), measured.groups, metric, 10, EXTRA_LAYERS.get(key, []),
                              BASELINES.get(key, "blur"))
        best = (min if metric == "deletion" else max)(scores, key=scores.get)
        cached[key] = LayerChoice(key, best, metric, scores, blank, measured.count)
        ctx.log.append(f"Grad-CAM layer of {key} by {metric}: {cached[key].describe()} "
                       f"({time.perf_counter() - start:.1f} s)")
    return cached[key]


def pick_layers(ctx: Context) -> list[Figure]:
    """Demo stage: measure the Grad-CAM layer of every model the figures explain (no figure)."""
    for key in (*CASCADES, "vaegan"):
        measured_layer(ctx, key)
    return []


# ------------------------------------------------------------------------------------- reporting

COLUMNS = [
    ("deletion", "deletion AUC ↓"),
    ("insertion", "insertion AUC ↑"),
    ("pointing_game", "pointing game ↑"),
    ("relevance_mass", "relevance mass ↑"),
    ("spearman_top", "Spearman, top stage random"),
    ("spearman_all", "Spearman, all random ↓"),
]


#: What a table shows for an undefined value (e.g. a deletion AUC whose curve cannot be normalised).
UNDEFINED = "undefined"


def _cell(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value:.2f}"


def _shown(row: Row, key: str) -> str:
    """A table cell: empty where the row does not measure ``key`` (the chance row's sanity columns)."""
    return _cell(row.values[key]) if key in row.values else ""


def markdown_table(results: list[tuple[Case, list[Row]]]) -> str:
    """One Markdown table: a block of rows per model, the chance level first."""
    head = "| model (layer, images) | method | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [head, "| --- | --- |" + " ---: |" * len(COLUMNS)]
    for case, rows in results:
        for i, row in enumerate(rows):
            label = f"{case.title}: {case.target} at `{case.layer}`, {case.count} images" if i == 0 else ""
            cells = " | ".join(_shown(row, key) for key, _ in COLUMNS)
            lines.append(f"| {label} | {row.method} | {cells} |")
    return "\n".join(lines)


def html_table(results: list[tuple[Case, list[Row]]]) -> str:
    """The same table in HTML (best value per model and column in bold)."""
    import html

    parts = ['<table class="trust"><thead><tr><th>model</th><th>method</th>']
    parts += [f"<th>{html.escape(title)}</th>" for _, title in COLUMNS]
    parts.append("</tr></thead><tbody>")
    for case, rows in results:
        best = {}
        for key, _ in COLUMNS:
            vals = [r.values[key] for r in rows[1:] if r.values.get(key) is not None]
            if vals and not key.startswith("spearman_top"):
                best[key] = min(vals) if key in ("deletion", "spearman_all") else max(vals)
        for i, row in enumerate(rows):
            label = (f"{html.escape(case.title)}<br><small>{html.escape(case.target)} at "
                     f"<code>{html.escape(case.layer)}</code>, {case.count} images</small>")
            cell = f'<td rowspan="{len(rows)}">{label}</td>' if i == 0 else ""
            parts.append(f'<tr class="{"chance" if i == 0 else ""}">{cell}<td>{html.escape(row.method)}</td>')
            for key, _ in COLUMNS:
                value = row.values.get(key)
                text = _shown(row, key)
                bold = i > 0 and value is not None and best.get(key) == value
                parts.append(f"<td>{'<b>' + text + '</b>' if bold else text}</td>")
            parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _best(rows: list[Row], key: str, pick=max) -> Row | None:
    """The row with the best defined ``key`` (``None`` when no row defines it)."""
    defined = [r for r in rows if r.values.get(key) is not None]
    return pick(defined, key=lambda r: r.values[key]) if defined else None


def which_method(results: list[tuple[Case, list[Row]]]) -> list[str]:
    """Sentences saying what the table says, each backed by its numbers; undefined values say so."""
    lines = []
    for case, rows in results:
        chance, methods = rows[0], rows[1:]
        local = _best(methods, "pointing_game")
        faithful = _best(methods, "deletion", min)
        text = f"{case.title}: "
        if local is not None:
            text += (f"{local.method} points into the object most often (pointing game "
                     f"{_cell(local.values['pointing_game'])}, chance {_cell(chance.values['pointing_game'])})")
        if faithful is not None:
            text += (f"; {faithful.method}'s ranking removes the score fastest (deletion AUC "
                     f"{_cell(faithful.values['deletion'])}, random ranking {_cell(chance.values['deletion'])})")
        else:
            text += ("; the deletion AUC is undefined for every method (the target's score hardly changes "
                     "between the intact and the fully perturbed image)")
        lines.append(text + ".")
    names = [r.method for r in results[0][1][1:]]
    table = {(case.key, r.method): r.values for case, rows in results for r in rows[1:]}
    titles = {case.key: case.title for case, _ in results}

    def worst(name: str, key: str) -> tuple[float | None, str]:
        """The highest value over the models (``None``: no model had an informative map)."""
        values = [(table[(model, name)][key], titles[model]) for model in titles]
        present = [(v, title) for v, title in values if v is not None]
        return max(present) if present else (None, "")

    stuck = [n for n in names if (worst(n, "spearman_top")[0] or 0.0) >= SANITY_TOP]
    lines.append(
        "Sanity check, cascading randomisation (Adebayo et al. 2018): with only the top stage re-initialised, "
        + (", ".join(f"{n} (Spearman {_cell(worst(n, 'spearman_top')[0])} on the {worst(n, 'spearman_top')[1]})"
                     for n in stuck) + f" keep maps correlated >= {SANITY_TOP} with the trained model's: they "
           "barely depend on the weights that make the decision" if stuck else
           f"every method's maps fall below Spearman {SANITY_TOP} on every model")
        + "; with every stage re-initialised, "
        + ", ".join(f"{n} {_cell(worst(n, 'spearman_all')[0])}" for n in names)
        + " (highest Spearman over the models; < 0.5 passes)."
    )
    return lines


def trust_figure(results: list[tuple[Case, list[Row]]], path) -> None:
    """Per model: deletion AUC (beside the random ranking's) and pointing game (beside chance) per method."""
    from matplotlib.figure import Figure as MplFigure

    from ...viz import save_figure

    fig = MplFigure(figsize=(3.2 * len(results), 5.2), layout="constrained")
    axes = fig.subplots(2, len(results), squeeze=False)
    for c, (case, rows) in enumerate(results):
        chance, methods = rows[0], rows[1:]
        names = [r.method for r in methods]
        pos = np.arange(len(names))
        for r, (key, label) in enumerate((("deletion", "deletion AUC (lower: more faithful)"),
                                          ("pointing_game", "pointing game (higher: localises)"))):
            ax = axes[r, c]
            values = [m.values[key] for m in methods]
            ax.barh(pos, [0.0 if v is None else v for v in values], color="C0" if r == 0 else "C2")
            for p, v in zip(pos, values):
                if v is None:
                    ax.text(0.02, p, UNDEFINED, va="center", fontsize=6, color="C3")
            if chance.values[key] is not None:
                ax.axvline(chance.values[key], color="C3", linestyle="--",
                           label="random ranking" if r == 0 else "chance (mask share)")
            ax.set_yticks(pos, names if c == 0 else [""] * len(names), fontsize=7)
            ax.invert_yaxis()
            shown = [v for v in (*values, chance.values[key]) if v is not None]
            ax.set_xlim(min([0.0, *shown]), max([1.0, *shown]))  # a defined AUC lies in [-1, 2]
            ax.tick_params(labelsize=7)
            ax.set_xlabel(label, fontsize=7)
            if r == 0:
                ax.set_title(f"{case.title}\n{case.layer}", fontsize=8)
            if chance.values[key] is not None:
                ax.legend(fontsize=6, loc="lower right")
    save_figure(fig, path)


def randomisation_strip(ctx: Context, layer: str, path, count: int) -> dict[str, list[float]]:
    """Adebayo et al.'s cascading strip on the shapes classifier for Grad-CAM and guided backprop."""
    from matplotlib.figure import Figure as MplFigure

    from ...viz import overlay, save_figure, to_rgb

    model = ctx.model("shapes_classifier")
    x, y, _ = _samples(ctx, "shapes_classifier", count)
    target = ac.Class(y.tolist())
    cascade = CASCADES["shapes_classifier"]
    picks = {"Grad-CAM": METHODS["Grad-CAM"], "Guided backprop": METHODS["Guided backprop"]}
    results = {name: metrics.randomisation(lambda m, b=build: b(m, layer), model, x, target, layers=cascade,
                                           progress=False) for name, build in picks.items()}
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
        Figure("trust_metrics.png", "quality", "Every explainer x metric",
               f"Each model's held-out images ({count} per model), every method at the same CAM layer (picked by "
               "measurement, see the run log). Faithfulness: deletion / insertion AUC of the target's score as "
               f"the map's top pixels are blurred away / restored ({steps} steps; dashed: a random ranking). "
               "Localisation: pointing game and relevance mass against the exact shape masks (VAE: the "
               "explained box), chance = the mask's share of the image. Sanity: Spearman correlation with the "
               "maps after cascading re-initialisation of the top stage / of every stage (segmenters: on the "
               "images of the first shape class). " + " ".join(said),
               table=html_table(results)),
        Figure("randomisation_classifier.png", "quality", "Sanity check: cascading randomisation",
               f"Shapes classifier, Class(true shape): the map of the trained model, then after re-initialising "
               f"{', '.join(cascade)} one after the other (Adebayo et al. 2018). Grad-CAM at "
               f"{layers['shapes_classifier']} keeps Spearman {rho['Grad-CAM'][0]:.2f} to its trained map once "
               f"the dense head is random and {rho['Grad-CAM'][-1]:.2f} once everything is; guided backprop keeps "
               f"{rho['Guided backprop'][0]:.2f} and {rho['Guided backprop'][-1]:.2f}: "
               + ("its maps barely depend on the head's weights, an edge detector more than an explanation."
                  if rho["Guided backprop"][0] > 0.5 else "here its maps do change.")),
    ]
