"""Choosing a CAM layer by measurement: candidate layers found from one forward pass, ranked by a metric."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.checks import check_int
from areacam.core.autograd import NoGradientError
from areacam.core.forward import NO_ARGS, ForwardArgs
from areacam.core.forward import forward_args as pack_forward_args
from areacam.core.inputs import check_input
from areacam.core.outputs import leaves
from areacam.core.state import explaining
from areacam.layers.find import layer_name, resolve_layer
from areacam.layers.hooks import Hooks
from areacam.methods.cam import GradCAM
from areacam.metrics.catalog import METRICS
from areacam.metrics.catalog import names as metric_names
from areacam.metrics.faithfulness import deletion, insertion, road
from areacam.metrics.localisation import iou, pointing_game, relevance_mass, relevance_rank
from areacam.metrics.maps import flat_maps
from areacam.metrics.means import defined_mean, number
from areacam.targets.base import Target, as_target_list

__all__ = ["LayerRanking", "candidate_layers", "rank_layers"]

_LOCALISATION = {
    "pointing_game": pointing_game,
    "relevance_mass": relevance_mass,
    "relevance_rank": relevance_rank,
    "iou": iou,
}


def candidate_layers(model: nn.Module, x: Tensor, fwd: ForwardArgs = NO_ARGS) -> list[str]:
    """The output of each resolution stage of ``model`` on ``x``, input side first.

    Found from one forward pass with a hook on every module: the 4-D ``(B, C, h, w)`` tensors the
    modules return, in the order they are produced, are cut into runs of equal ``(h, w)``; the last
    tensor of each run (the stage's output, just before the next down- or up-sampling) is a
    candidate, named by the outermost module that returns it (the last to finish). Left out:
    modules that run more than once per pass (a shared ReLU), ``nn.Identity``, 1x1 outputs (a
    global pool) and the model's own output (the logits). For a VGG-style classifier this gives
    the last ReLU of every block; for a U-Net the encoder stages, the decoder blocks and the
    decoder's output; for a torchvision ResNet the stem's ReLU and ``layer1`` .. ``layer4``.
    ``fwd``: the model's extra arguments for ``x``.
    """
    x = check_input(model, x)
    records: list[tuple[str, Tensor]] = []
    calls: Counter[str] = Counter()

    def hook(module: nn.Module, inputs: Any, output: Any, name: str) -> None:
        calls[name] += 1
        if isinstance(output, Tensor) and output.dim() == 4:
            records.append((name, output))

    modules = dict(model.named_modules())
    with Hooks() as hooks:
        for name, module in modules.items():
            if name and not isinstance(module, nn.Identity):
                hooks.add(module.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)))
        with explaining(model), torch.no_grad():
            output = fwd.take(slice(0, 1)).run(model, x[:1])
    final = {id(t) for t in leaves(output)}
    producers: dict[int, list[str]] = {}
    shapes: dict[int, tuple[int, ...]] = {}
    for name, tensor in records:
        if calls[name] != 1 or id(tensor) in final or id(tensor) == id(x) or tensor.shape[-2:].numel() == 1:
            continue
        producers.setdefault(id(tensor), []).append(name)
        shapes[id(tensor)] = tuple(tensor.shape[-2:])
    names, sizes = [], []
    for key, owners in producers.items():  # in order of first production
        names.append(owners[-1])
        sizes.append(shapes[key])
    return [name for i, name in enumerate(names) if i == len(names) - 1 or sizes[i + 1] != sizes[i]]


@dataclass
class LayerRanking:
    """Layers ranked best first by ``metric``.

    - ``layers``: names, best first; ``scores`` ``(L,)``: the metric's mean over samples and targets
      (deletion/insertion: over the samples whose curve is defined, see
      :attr:`~areacam.metrics.Curves.defined`); ``values`` ``(L, B, K)``: per sample and target.
    - ``defined`` ``(L,)`` bool: the layer's score is defined (a layer whose every curve is undefined
      is ranked last and shown as undefined, never as a number); ``valid`` ``(L, B, K)`` per value.
    - ``degenerate`` ``(L,)``: share of constant maps at each layer (no information).
    - ``higher_is_better``: the metric's direction (deletion AUC: lower is better).
    - ``extra``: other metrics per layer, ``{name: (L,)}`` (localisation when masks were given).
    - ``skipped``: default candidates left out because the targets' scores do not depend on them (a
      decoder layer for a latent target); layers named by the caller are never skipped.
    """

    metric: str
    higher_is_better: bool
    layers: list[str]
    scores: Tensor
    values: Tensor
    degenerate: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)
    defined: Tensor | None = None
    valid: Tensor | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def best(self) -> str:
        """The best layer's name (``ValueError`` when no layer's score is defined)."""
        if self.defined is not None and not bool(self.defined[0]):
            raise ValueError(
                f"no layer has a defined {self.metric} score: the target's score hardly changes between the "
                "intact and the fully perturbed image (see Curves.defined); rank by another metric"
            )
        return self.layers[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: one row per layer, best first."""
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "layers": [
                {
                    "layer": name,
                    self.metric: number(self.scores[i], True if self.defined is None else self.defined[i]),
                    "degenerate": float(self.degenerate[i]),
                    **{key: float(values[i]) for key, values in self.extra.items()},
                }
                for i, name in enumerate(self.layers)
            ],
            "skipped": list(self.skipped),
        }

    def table(self) -> str:
        """A Markdown table, best layer first."""
        keys = [self.metric, *self.extra, "degenerate"]
        lines = ["| rank | layer | " + " | ".join(keys) + " |", "| --- | --- |" + " --- |" * len(keys)]
        for i, row in enumerate(self.to_dict()["layers"]):
            cells = ["undefined" if row[k] is None else f"{row[k]:.3f}" for k in keys]
            lines.append(f"| {i + 1} | `{row['layer']}` | " + " | ".join(cells) + " |")
        if self.skipped:
            names = ", ".join(f"`{name}`" for name in self.skipped)
            lines.append(f"\nNot ranked (the targets do not depend on them): {names}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def rank_layers(
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    method: Callable[..., Any] = GradCAM,
    metric: str = "deletion",
    masks: Tensor | np.ndarray | None = None,
    layers: Sequence[str | nn.Module] | None = None,
    steps: int = 10,
    baseline: str = "blur",
    batch_size: int = 64,
    random_state: int = 0,
    progress: bool | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> LayerRanking:
    """Rank candidate layers for ``method`` and ``targets`` by ``metric``, best first.

    Args:
        model: the model (left as found).
        x: the inputs to explain.
        targets: one target or ``K``.
        method: an explainer class or callable ``(model, layer) -> explainer`` (default Grad-CAM).
        metric: ``"deletion"`` (AUC, lower is better), ``"insertion"`` (AUC), ``"road"``
            (ROAD combined: least- minus most-relevant-first score change, halved and averaged over
            the percentiles 10..90, as pytorch-grad-cam's ``ROADCombined``), or with ``masks`` a
            localisation metric: ``"pointing_game"``, ``"relevance_mass"``, ``"relevance_rank"``, ``"iou"``.
        masks: ``(B, H, W)`` or ``(B, K, H, W)`` ground truth; when given, the table also lists the
            pointing game and relevance mass of every layer.
        layers: candidate layers (modules or dotted names); default :func:`candidate_layers`, less
            those the targets' scores do not depend on (listed in ``skipped``).
        steps: points of the deletion/insertion curves (as :func:`deletion`).
        baseline: what replaces removed pixels (as :func:`deletion`).
        batch_size: perturbed inputs per forward pass.
        random_state: seeds the curves' tie-breaking and imputation.
        progress: tqdm bars of the perturbation metrics.
        forward_args, forward_kwargs: extra model arguments, handed on to every explainer call and metric.
    """
    rankable = metric_names(layer_ranking=True)
    if metric not in rankable:
        raise ValueError(f"unknown metric {metric!r}; choose from {sorted(rankable)}")
    if METRICS[metric].needs_masks and masks is None:
        raise ValueError(f"metric {metric!r} compares maps with ground truth: pass masks=(B, H, W) bool")
    if not callable(method):
        raise TypeError(f"method must be an explainer class or a callable (model, layer) -> explainer, got {method!r}")
    steps = check_int("steps", steps)
    targets = as_target_list(targets)
    x = check_input(model, x)
    fwd = pack_forward_args(model, x, forward_args, forward_kwargs, "rank_layers(...)")
    if layers is None:
        names = candidate_layers(model, x, fwd)
    else:
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        names = [layer_name(model, resolve_layer(model, layer)) for layer in layers]
    if not names:
        raise ValueError("no candidate layer: pass layers=[...]")
    values, valid, degenerate = [], [], []
    extra: dict[str, list[Tensor]] = {}
    if masks is not None:
        extra = {key: [] for key in ("pointing_game", "relevance_mass") if key != metric}
    skipped: list[str] = []
    for name in list(names):
        try:
            maps = method(model, name)(x, targets, **fwd.passed_on()).maps
        except NoGradientError:
            if layers is not None:
                raise
            skipped.append(name)
            names.remove(name)
            continue
        flat = flat_maps(maps)
        degenerate.append(flat.float().mean())
        ok = torch.ones(maps.shape[:2], dtype=torch.bool, device=maps.device)
        if metric in ("deletion", "insertion"):
            curves = (deletion if metric == "deletion" else insertion)(
                model,
                x,
                targets,
                maps,
                steps=steps,
                baseline=baseline,
                batch_size=batch_size,
                random=False,
                random_state=random_state,
                progress=progress,
                forward_args=fwd.args,
                forward_kwargs=fwd.kwargs,
            )
            value, ok = curves.auc, curves.defined
        elif metric == "road":
            most, least = (
                road(
                    model,
                    x,
                    targets,
                    maps,
                    order=order,
                    random_state=random_state,
                    batch_size=batch_size,
                    forward_args=fwd.args,
                    forward_kwargs=fwd.kwargs,
                )
                for order in ("most", "least")
            )
            value = ((least - most) / 2).mean(2)
        else:
            value = _quiet(_LOCALISATION[metric], maps, masks)
        values.append(value.float())
        valid.append(ok)
        for key in extra:
            extra[key].append(_quiet(_LOCALISATION[key], maps, masks).mean())
    if not names:
        raise ValueError(f"no candidate layer: the targets' scores depend on none of {skipped}")
    stacked, valid_stacked = torch.stack(values), torch.stack(valid)
    scores, defined = defined_mean(stacked.flatten(1), valid_stacked.flatten(1), dim=1)
    higher = METRICS[metric].higher_is_better
    # Undefined layers go last whatever the direction: rank by (defined, score).
    rank_key = torch.where(defined, scores if higher else -scores, float("-inf")).cpu()
    order = torch.argsort(rank_key, descending=True, stable=True).tolist()
    return LayerRanking(
        metric=metric,
        higher_is_better=higher,
        layers=[names[i] for i in order],
        scores=scores[order],
        values=stacked[order],
        degenerate=torch.stack(degenerate)[order],
        extra={key: torch.stack(column)[order] for key, column in extra.items()},
        defined=defined[order],
        valid=valid_stacked[order],
        skipped=skipped,
    )


def _quiet(metric: Callable[..., Tensor], maps: Tensor, masks: Any) -> Tensor:
    """A localisation metric without the constant-map warning (the ranking reports ``degenerate``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return metric(maps, masks)
