"""Results of the metrics: per-sample, per-target tensors, their means, JSON and figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["Curves", "masked_mean"]


def masked_mean(values: Tensor, valid: Tensor | None = None, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``values`` over ``dim`` counting only ``valid`` entries (0 where none is valid)."""
    values = values.float()
    valid = torch.ones_like(values, dtype=torch.bool) if valid is None else valid.expand_as(values)
    dims = tuple(range(values.dim())) if dim is None else dim
    total = torch.where(valid, values, 0.0).sum(dims)
    count = valid.sum(dims)
    return torch.where(count > 0, total / count.clamp(min=1), 0.0)


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
      units (a logit, a region's logit sum, a reconstruction error); in between it can leave
      ``[0, 1]`` when a partial perturbation moves the score beyond either end.
    - ``auc`` ``(B, K)``: trapezoidal area under ``curves`` over ``fractions``; deletion: lower is
      more faithful, insertion: higher.
    - ``random_scores`` / ``random_curves`` / ``random_auc``: the same for a random ranking of the
      pixels (``None`` when not computed): the chance level to compare with.
    - ``flat`` ``(B, K)`` bool: the intact and fully perturbed scores are equal, so the curve cannot
      be normalised; its ``curves`` are 0 and its AUCs 0 and it is left out of the means.
    """

    kind: str
    fractions: Tensor
    scores: Tensor
    curves: Tensor
    auc: Tensor
    flat: Tensor
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
        tolerance: float,
    ) -> Curves:
        """Normalise raw ``(B, K, S + 1)`` scores between ``empty`` and ``original`` ``(B, K)``."""
        span = original - empty
        flat = span.abs() <= tolerance * torch.maximum(original.abs(), empty.abs())
        steps = scores.shape[2] - 1
        fractions = torch.linspace(0, 1, steps + 1)

        def normalise(raw: Tensor) -> tuple[Tensor, Tensor]:
            curve = torch.where(flat[..., None], 0.0, (raw - empty[..., None]) / torch.where(flat, 1, span)[..., None])
            return curve, torch.trapezoid(curve, dx=1.0 / steps, dim=2)

        curves, auc = normalise(scores)
        random_curves = random_auc = None
        if random_scores is not None:
            random_curves, random_auc = normalise(random_scores)
        return cls(
            kind=kind,
            fractions=fractions,
            scores=scores,
            curves=curves,
            auc=auc,
            flat=flat,
            random_scores=random_scores,
            random_curves=random_curves,
            random_auc=random_auc,
            baseline=baseline,
            targets=list(targets),
        )

    @property
    def mean_auc(self) -> Tensor:
        """``(K,)`` AUC of each target averaged over the samples whose curve is not flat."""
        return masked_mean(self.auc, ~self.flat, dim=0)

    @property
    def mean_random_auc(self) -> Tensor | None:
        """``(K,)`` random-ranking AUC of each target averaged as :attr:`mean_auc` (``None`` if not computed)."""
        return None if self.random_auc is None else masked_mean(self.random_auc, ~self.flat, dim=0)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON: overall and per-target mean AUCs, the flat count."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "baseline": self.baseline if isinstance(self.baseline, (str, int, float)) else "tensor",
            "steps": int(self.fractions.numel() - 1),
            "auc": float(masked_mean(self.auc, ~self.flat)),
            "auc_per_target": self.mean_auc.tolist(),
            "flat": int(self.flat.sum()),
            "targets": _names(self.targets),
        }
        if self.random_auc is not None:
            out["random_auc"] = float(masked_mean(self.random_auc, ~self.flat))
            out["random_auc_per_target"] = self.mean_random_auc.tolist()
        return out

    def plot(self, path: str | Path | None = None, titles: list[str] | None = None) -> Figure:
        """One panel per target: the mean normalised curve over the samples, and the random one."""
        from .plots import curves_figure

        return curves_figure([self], titles=titles, path=path)
