"""Results of the metrics: per-sample, per-target tensors, their means, JSON and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from areacam.metrics.means import defined_mean, number, numbers

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["MIN_DROP", "Curves"]

#: A curve is normalised only where its end-to-end change (intact minus fully perturbed score) is at
#: least this share of the whole range its scores span (map and random ranking together); then every
#: normalised value, and so every AUC, lies in ``[1 - 1 / MIN_DROP, 1 / MIN_DROP]`` = ``[-1, 2]``.
MIN_DROP = 0.5

#: Intact and fully perturbed scores closer than this, relative to their magnitude, are equal.
_FLAT = 1e-6


def _names(targets: list) -> list[str]:
    return [repr(target) for target in targets]


@dataclass
class Curves:
    """Deletion or insertion curves of ``B`` samples and ``K`` targets, ``S + 1`` points each.

    - ``kind``: ``"deletion"`` or ``"insertion"``; ``fractions`` ``(S + 1,)``: share of the pixels
      removed (deletion) or inserted (insertion) at each point.
    - ``scores`` ``(B, K, S + 1)``: the raw target scores along the curve.
    - ``curves``: the scores normalised between the fully perturbed image (0) and the intact image
      (1), as the performance-information curves of Kapishnikov et al. 2019 (XRAI) normalise
      RISE's: ``(score - score(baseline image)) / (score(image) - score(baseline image))``. So a
      deletion curve runs from 1 to 0 and an insertion curve from 0 to 1 whatever the target's
      units (a logit, a region's logit sum, a reconstruction error).
    - ``defined`` ``(B, K)`` bool: the normalisation means something. It is defined where the
      intact and fully perturbed scores differ by at least :data:`MIN_DROP` (half) of the range the
      scores span along the curve and its random ranking. A curve whose ends nearly agree while the
      score moves a lot in between (a region sum that perturbation hardly changes in total) would
      otherwise normalise to any number (an "AUC" of -9.65). Where defined, every normalised value
      and AUC lies in ``[-1, 2]`` (``1 - 1/MIN_DROP`` to ``1/MIN_DROP``); where not, ``curves`` and
      ``auc`` are 0, the means leave the sample out, and tables and JSON show it as undefined.
    - ``auc`` ``(B, K)``: trapezoidal area under ``curves`` over ``fractions``; deletion: lower is
      more faithful, insertion: higher.
    - ``random_scores`` / ``random_curves`` / ``random_auc``: the same for a random ranking of the
      pixels (``None`` when not computed): the chance level to compare with, defined where ``auc`` is.
    """

    kind: str
    fractions: Tensor
    scores: Tensor
    curves: Tensor
    auc: Tensor
    defined: Tensor
    random_scores: Tensor | None = None
    random_curves: Tensor | None = None
    random_auc: Tensor | None = None
    baseline: Any = "blur"
    targets: list = field(default_factory=list)

    @classmethod
    def build(
        cls,
        kind: str,
        scores: Tensor,
        random_scores: Tensor | None,
        original: Tensor,
        empty: Tensor,
        baseline: Any,
        targets: list,
    ) -> Curves:
        """Normalise raw ``(B, K, S + 1)`` scores between ``empty`` and ``original`` ``(B, K)``.

        Computed in the scores' dtype (float64 for a float64 model) and rounded to float32 once, at the end.
        """
        span = original - empty
        both = scores if random_scores is None else torch.cat([scores, random_scores], dim=2)
        extent = both.amax(dim=2) - both.amin(dim=2)
        moved = span.abs() > _FLAT * torch.maximum(original.abs(), empty.abs())
        defined = moved & (span.abs() >= MIN_DROP * extent)
        steps = scores.shape[2] - 1
        fractions = torch.linspace(0, 1, steps + 1)
        divisor = torch.where(defined, span, 1)[..., None]

        def normalise(raw: Tensor) -> tuple[Tensor, Tensor]:
            curve = torch.where(defined[..., None], (raw - empty[..., None]) / divisor, 0.0)
            return curve, torch.trapezoid(curve, dx=1.0 / steps, dim=2)

        curves, auc = normalise(scores)
        random_curves = random_auc = None
        if random_scores is not None:
            random_curves, random_auc = normalise(random_scores)

        def rounded(values: Tensor | None) -> Tensor | None:
            return None if values is None else values.float()

        return cls(
            kind=kind,
            fractions=fractions,
            scores=scores.float(),
            curves=curves.float(),
            auc=auc.float(),
            defined=defined,
            random_scores=rounded(random_scores),
            random_curves=rounded(random_curves),
            random_auc=rounded(random_auc),
            baseline=baseline,
            targets=list(targets),
        )

    @property
    def mean_auc(self) -> Tensor:
        """``(K,)`` AUC of each target averaged over the samples where it is :attr:`defined` (0 where none is;
        see :attr:`mean_defined`)."""
        return defined_mean(self.auc, self.defined, dim=0)[0]

    @property
    def mean_random_auc(self) -> Tensor | None:
        """``(K,)`` random-ranking AUC of each target averaged as :attr:`mean_auc` (``None`` if not computed)."""
        return None if self.random_auc is None else defined_mean(self.random_auc, self.defined, dim=0)[0]

    @property
    def mean_defined(self) -> Tensor:
        """``(K,)`` bool: the target's curve is defined on at least one sample."""
        return self.defined.any(dim=0)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON: overall and per-target mean AUCs (``None``: undefined), the undefined count."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "baseline": self.baseline if isinstance(self.baseline, (str, int, float)) else "tensor",
            "steps": int(self.fractions.numel() - 1),
            "auc": number(*defined_mean(self.auc, self.defined)),
            "auc_per_target": numbers(self.mean_auc, self.mean_defined),
            "undefined": int((~self.defined).sum()),
            "targets": _names(self.targets),
        }
        if self.random_auc is not None:
            out["random_auc"] = number(*defined_mean(self.random_auc, self.defined))
            random_mean = defined_mean(self.random_auc, self.defined, dim=0)[0]
            out["random_auc_per_target"] = numbers(random_mean, self.mean_defined)
        return out

    def plot(self, path: str | Path | None = None, titles: list[str] | None = None) -> Figure:
        """One panel per target: the mean normalised curve over the samples, and the random one."""
        from areacam.metrics.plots import curves_figure

        return curves_figure([self], titles=titles, path=path)
