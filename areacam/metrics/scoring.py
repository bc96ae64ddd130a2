"""Scoring many perturbed inputs for many targets with shared, batched forward passes.

A perturbation metric describes its inputs as rows: row ``r`` is a perturbation of sample
``samples[r]`` that must be scored for the targets ``needs[r]`` (a ``(R, K)`` bool matrix). A row
needed by several targets (a random ranking, a fully removed image) runs once for all of them.
Rows are built chunk by chunk (``build(start, stop)``) so memory stays at one batch. Targets are
bound at the unperturbed batch (:meth:`Target.bind`): ``Class()`` keeps the original argmax and
``Segment`` the originally predicted pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from areacam._util.progress import progress_bar, shown
from areacam.core.autograd import score_targets
from areacam.core.explanation import working_dtype
from areacam.core.forward import forward_args as pack_forward_args
from areacam.core.inputs import check_input
from areacam.core.state import explaining
from areacam.targets.base import Target, as_target_list

__all__ = ["Scorer"]


class Scorer:
    """The model's output and scores on the unperturbed ``x``, and batched scoring of perturbations.

    ``forward_args`` / ``forward_kwargs`` are the model's extra arguments (``fwd``); a perturbed row of
    sample ``b`` is run with sample ``b``'s per-sample arguments. ``where`` names the metric in errors.
    """

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        targets: Target | Sequence[Target],
        batch_size: int,
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
        where: str = "the metric",
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.targets = as_target_list(targets)
        self.x = check_input(model, x)
        self.fwd = pack_forward_args(model, self.x, forward_args, forward_kwargs, where)
        self.batch_size = batch_size
        with explaining(model), torch.no_grad():
            self.output: Any = self.fwd.run(model, self.x)
            self.dtype = working_dtype(self.x.dtype)  # float64 for a float64 model, else float32
            self.original = score_targets(self.targets, self.output, self.x).to(self.dtype)  # (B, K)

    def score(
        self,
        samples: Tensor,
        needs: Tensor,
        build: Callable[[int, int], Tensor],
        desc: str,
        progress: bool | None = None,
    ) -> Tensor:
        """Scores ``(R, K)`` of ``R`` rows (0 where a row is not needed by a target).

        ``samples`` ``(R,)`` long, ``needs`` ``(R, K)`` bool, ``build(start, stop)`` returns rows
        ``start:stop`` as a ``(n, C, H, W)`` batch on the model's device.
        """
        rows = samples.shape[0]
        result = torch.zeros(rows, len(self.targets), dtype=self.dtype, device=self.x.device)
        chunks = range(0, rows, self.batch_size)
        enabled = shown(progress, len(chunks))
        with (
            explaining(self.model),
            torch.no_grad(),
            progress_bar(len(chunks), desc, enabled, unit="batch", leave=False) as bar,
        ):
            for start in chunks:
                stop = min(start + self.batch_size, rows)
                inputs = build(start, stop)
                output = self.fwd.take(samples[start:stop]).run(self.model, inputs)
                bound_samples = samples[start:stop].tolist()
                wanted = needs[start:stop].any(0).nonzero().flatten().tolist()
                for k in wanted:
                    target = self.targets[k].bind(bound_samples, self.output)
                    scores = target(output, inputs).to(self.dtype)
                    if not torch.isfinite(scores).all():
                        raise ValueError(
                            f"the score of target {self.targets[k]!r} on a perturbed input is not finite: "
                            "the model output holds NaN or inf there"
                        )
                    result[start:stop, k] = scores
                bar.update(1)
        return torch.where(needs.to(result.device), result, 0.0)
