"""One call for every metric of one set of maps: :func:`evaluate` and its :class:`Evaluation`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import Tensor, nn

from areacam.core.forward import forward_args as pack_forward_args
from areacam.core.inputs import check_input
from areacam.metrics.catalog import names
from areacam.metrics.complexity import entropy, sparseness
from areacam.metrics.faithfulness import MapsOrExplainer, deletion, insertion, road
from areacam.metrics.localisation import iou, pointing_game, relevance_mass, relevance_rank
from areacam.metrics.maps import as_masks, flat_maps, resolve_maps
from areacam.metrics.means import defined_mean, number, numbers
from areacam.metrics.result import Curves
from areacam.targets.base import Target, as_target_list

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["DEFAULT", "Evaluation", "evaluate"]

#: What :func:`evaluate` computes by default (plus every localisation metric when masks are given): the
#: faithfulness curves without ROAD (the slowest) and the complexity metrics.
DEFAULT = ("deletion", "insertion", "sparseness", "entropy")


@dataclass
class Evaluation:
    """Every metric of ``B x K`` maps.

    - ``values``: ``{name: (B, K) tensor}``. Faithfulness: ``deletion_auc`` (lower is better),
      ``insertion_auc`` (higher), each beside ``*_random_auc`` of a random ranking; ``road``
      (ROAD combined, higher is better) with ``road_most`` / ``road_least``. Localisation:
      ``pointing_game``, ``relevance_mass``, ``relevance_rank``, ``iou`` and ``mask_share``, the
      share of the image inside the mask: what a map without information scores on average in
      the first three. Complexity: ``sparseness``, ``entropy``.
    - ``curves``: ``{"deletion": Curves, "insertion": Curves}`` as computed.
    - ``defined``: ``{name: (B, K) bool}`` for the values that can be undefined (the AUCs, where
      :attr:`Curves.defined` is False); an undefined value is left out of the means and is ``None``
      in :meth:`to_dict`, never a number.
    - ``degenerate`` ``(B, K)``: constant maps (they score 0 in localisation).
    """

    values: dict[str, Tensor]
    curves: dict[str, Curves] = field(default_factory=dict)
    degenerate: Tensor | None = None
    targets: list = field(default_factory=list)
    defined: dict[str, Tensor] = field(default_factory=dict)

    def _valid(self, name: str) -> Tensor | None:
        return self.defined.get(name)

    def means(self) -> dict[str, float | None]:
        """Each metric averaged over samples and targets (``None``: defined nowhere)."""
        return {name: number(*defined_mean(value, self._valid(name))) for name, value in self.values.items()}

    def per_target(self) -> dict[str, list[float | None]]:
        """Each metric averaged over the samples, one value per target (``None``: undefined)."""
        return {name: numbers(*defined_mean(value, self._valid(name), dim=0)) for name, value in self.values.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: means, per-target means, per-sample values (``None``: undefined), curve
        summaries."""
        return {
            "targets": [repr(t) for t in self.targets],
            "means": self.means(),
            "per_target": self.per_target(),
            "per_sample": {
                name: numbers(value, self.defined[name]) if name in self.defined else value.tolist()
                for name, value in self.values.items()
            },
            "degenerate": self.degenerate.tolist() if self.degenerate is not None else None,
            "curves": {name: curves.summary() for name, curves in self.curves.items()},
        }

    def plot(self, path: str | Path | None = None, titles: list[str] | None = None) -> Figure:
        """Deletion and insertion curves (rows) per target (columns), beside the random ranking's."""
        from areacam.metrics.plots import curves_figure

        if not self.curves:
            raise ValueError("this evaluation has no deletion or insertion curves to plot")
        return curves_figure(list(self.curves.values()), titles=titles, path=path)


def evaluate(
    model: nn.Module,
    x: Tensor,
    targets: Target | Sequence[Target],
    maps: MapsOrExplainer,
    masks: Tensor | np.ndarray | None = None,
    metrics: Sequence[str] | None = None,
    steps: int = 20,
    baseline: Any = "blur",
    batch_size: int = 64,
    percentiles: Sequence[float] = (10, 20, 30, 40, 50, 60, 70, 80, 90),
    random_state: int = 0,
    progress: bool | None = None,
    forward_args: Sequence[Any] = (),
    forward_kwargs: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate ``maps`` (or an explainer's maps of ``x``) of ``targets`` with several metrics at once.

    ``metrics`` picks from ``deletion``, ``insertion``, ``road``, ``sparseness``, ``entropy`` and,
    with ``masks``, ``pointing_game``, ``relevance_mass``, ``relevance_rank``, ``iou``. Default:
    deletion, insertion, sparseness, entropy, plus all four localisation metrics when ``masks`` is
    given. ``steps``/``baseline`` are those of the curves, ``percentiles`` of ROAD.
    ``forward_args`` / ``forward_kwargs``: extra model arguments, handed on to the explainer and to
    every metric that runs the model.
    """
    targets = as_target_list(targets)
    known = names()
    localisation = names(needs_masks=True)
    if metrics is None:
        chosen = list(DEFAULT) + (list(localisation) if masks is not None else [])
    else:
        chosen = [metrics] if isinstance(metrics, str) else list(metrics)
        bad = [name for name in chosen if name not in known]
        if bad:
            raise ValueError(f"unknown metric {bad[0]!r}; choose from {list(known)}")
        if masks is None and any(name in localisation for name in chosen):
            raise ValueError("localisation metrics compare maps with ground truth: pass masks=(B, H, W) bool")
    fwd = pack_forward_args(model, check_input(model, x), forward_args, forward_kwargs, "evaluate(...)")
    maps = resolve_maps(maps, x, targets, fwd)
    if masks is not None:
        masks = as_masks(masks, maps)
    values: dict[str, Tensor] = {}
    defined: dict[str, Tensor] = {}
    curves: dict[str, Curves] = {}
    for name, run in (("deletion", deletion), ("insertion", insertion)):
        if name in chosen:
            curves[name] = found = run(
                model,
                x,
                targets,
                maps,
                steps=steps,
                baseline=baseline,
                batch_size=batch_size,
                random_state=random_state,
                progress=progress,
                forward_args=fwd.args,
                forward_kwargs=fwd.kwargs,
            )
            for key, auc in ((f"{name}_auc", found.auc), (f"{name}_random_auc", found.random_auc)):
                if auc is not None:
                    values[key], defined[key] = auc, found.defined
    if "road" in chosen:
        most, least = (
            road(
                model,
                x,
                targets,
                maps,
                percentiles=percentiles,
                order=order,
                random_state=random_state,
                batch_size=batch_size,
                progress=progress,
                forward_args=fwd.args,
                forward_kwargs=fwd.kwargs,
            ).mean(2)
            for order in ("most", "least")
        )
        values.update(road=(least - most) / 2, road_most=most, road_least=least)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant maps are reported in .degenerate
        for name, metric in (
            ("pointing_game", pointing_game),
            ("relevance_mass", relevance_mass),
            ("relevance_rank", relevance_rank),
            ("iou", iou),
        ):
            if name in chosen and masks is not None:  # checked above: chosen only with masks
                values[name] = metric(maps, masks)
    if masks is not None and any(name in localisation for name in chosen):
        values["mask_share"] = masks.flatten(2).float().mean(2)
    if "sparseness" in chosen:
        values["sparseness"] = sparseness(maps)
    if "entropy" in chosen:
        values["entropy"] = entropy(maps)
    return Evaluation(values=values, curves=curves, degenerate=flat_maps(maps), targets=targets, defined=defined)
