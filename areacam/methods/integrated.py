"""Integrated Gradients (Sundararajan et al. 2017) for any target, with captum's quadrature rules.

The attribution is ``(x - baseline) * sum_i w_i * grad f(baseline + a_i (x - baseline))`` with the
nodes ``a_i`` and weights ``w_i`` of the chosen rule. Every interpolated forward pass scores all K
targets; the K backward passes (one per target) cannot be shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from areacam._util.checks import check_int
from areacam.core.autograd import score_targets
from areacam.core.explainer import Explainer
from areacam.core.explanation import Explanation, working_dtype
from areacam.core.inputs import as_baseline, check_input
from areacam.core.state import explaining
from areacam.methods.gradients import gradient_maps
from areacam.methods.passes import finish, input_gradients
from areacam.methods.registry import register
from areacam.targets.base import Target, as_target_list

__all__ = ["RULES", "IntegratedGradients", "quadrature"]

#: The integration rules, by captum's names.
RULES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def quadrature(method: str, steps: int) -> tuple[list[float], list[float]]:
    """``(weights, nodes)`` of ``steps``-point rule ``method`` on ``[0, 1]``, as captum builds them."""
    if method == "gausslegendre":
        points, point_weights = np.polynomial.legendre.leggauss(steps)
        return (0.5 * point_weights).tolist(), (0.5 * (1 + points)).tolist()
    rule = method.removeprefix("riemann_")
    weights = [1 / steps] * steps
    if rule == "trapezoid":
        weights[0] /= 2
        weights[-1] /= 2
        nodes = torch.linspace(0, 1, steps)
    elif rule == "left":
        nodes = torch.linspace(0, 1 - 1 / steps, steps)
    elif rule == "middle":
        nodes = torch.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps)
    else:
        nodes = torch.linspace(1 / steps, 1, steps)
    return weights, nodes.tolist()


def _cli(model: nn.Module, layer: nn.Module | None, size: tuple[int, ...]) -> IntegratedGradients:
    return IntegratedGradients(model, batch_size=32)


@register(
    "integrated-gradients",
    layer=False,
    summary="Integrated Gradients (zero baseline, 50 Gauss-Legendre steps)",
    aliases=("ig", "integratedgradients"),
    build=_cli,
    peer="captum.attr.IntegratedGradients",
)
class IntegratedGradients(Explainer):
    """Integrated Gradients: path-integrated input gradients from ``baseline`` to ``x``.

    Args:
        model: the model.
        baseline: ``None`` (zeros), a number, or a tensor shaped like ``x`` or ``(1, C, H, W)``.
        steps: points of the integration rule (``>= 1``; ``>= 2`` for the Riemann rules).
        method: ``"gausslegendre"`` (captum's default) or ``"riemann_left"``, ``"riemann_right"``,
            ``"riemann_middle"``, ``"riemann_trapezoid"``.
        batch_size: interpolated images per forward pass; ``None``: all ``steps * B`` at once, as
            captum's default ``internal_batch_size=None``.
        batched: how the K backward passes run (see :func:`areacam.vjp.target_gradients`).

    ``raw`` is the signed attribution ``(B, K, C, H, W)`` and equals captum's; ``maps`` the channel
    maximum of its absolute value. ``delta`` ``(B, K)`` is captum's convergence delta: the sum of the
    attribution minus ``score(x) - score(baseline)``; the smaller, the better the rule converged.
    Per-sample target choices are frozen at ``x``'s output, and a target that reads the input
    (``ReconstructionError``) compares every interpolated output with ``x`` itself, so the
    attributions add up to the change of that error along the path. ``create_graph=True`` keeps the
    graph of ``raw``, ``maps`` and ``scores`` (see :class:`~areacam.methods.gradients.GradientExplainer`).
    """

    keeps_graph = True

    def __init__(
        self,
        model: nn.Module,
        baseline: float | Tensor | None = None,
        steps: int = 50,
        method: str = "gausslegendre",
        batch_size: int | None = None,
        batched: bool | None = None,
        *,
        create_graph: bool = False,
    ):
        super().__init__(model, create_graph)
        if method not in RULES:
            raise ValueError(f"unknown integration method {method!r}; choose from {list(RULES)}")
        least = 1 if method == "gausslegendre" else 2
        check_int(f"steps (method {method!r})", steps, least)
        if batch_size is not None:
            check_int("batch_size", batch_size)
        if (baseline is not None and not isinstance(baseline, (int, float, Tensor))) or isinstance(baseline, bool):
            raise TypeError(f"baseline must be None, a number or a tensor, got {type(baseline).__name__}")
        self.baseline, self.steps, self.method = baseline, int(steps), method
        self.batch_size, self.batched = batch_size, batched

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, H, W)`` batch ``x``."""
        targets = as_target_list(targets)
        x = check_input(self.model, x)
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        baseline = as_baseline(self.baseline, x)
        batch = x.shape[0]
        graph = self.create_graph
        with explaining(self.model, keep_mode=graph), torch.set_grad_enabled(graph):
            output = fwd.run(self.model, x)
            work = working_dtype(x.dtype)
            scores = score_targets(targets, output, x).to(work)
            bound = [target.bind(list(range(batch)), output) for target in targets]
            start = score_targets(bound, fwd.run(self.model, baseline.contiguous()), x).to(work)
        weights, nodes = quadrature(self.method, self.steps)
        rows = self.steps * batch
        per_pass = rows if self.batch_size is None else self.batch_size
        total: Tensor | None = None
        diff = x - baseline
        for first in range(0, rows, per_pass):
            index = torch.arange(first, min(first + per_pass, rows), device=x.device)
            step, sample = index // batch, index % batch  # step-major rows, as captum orders them
            alpha = torch.tensor(nodes, dtype=x.dtype, device=x.device)[step].view(-1, *(1,) * (x.dim() - 1))
            points = baseline[sample] + alpha * diff[sample]
            bound = [_Reference(target.bind(sample.tolist(), output), x[sample]) for target in targets]
            grads, _, _ = input_gradients(
                self.model, points, bound, self.batched, fwd=fwd.take(sample), create_graph=graph
            )
            step_weights = torch.tensor(weights, dtype=work, device=x.device)[step]
            grads = grads * step_weights.view(-1, *(1,) * (grads.dim() - 1))
            summed = torch.zeros(batch, *grads.shape[1:], dtype=work, device=x.device).index_add_(0, sample, grads)
            total = summed if total is None else total + summed
        assert total is not None  # steps >= 1
        raw = total * diff.to(work).unsqueeze(1)
        delta = raw.flatten(2).sum(2) - (scores - start)
        expl = finish(raw, gradient_maps(raw), scores, targets, x.shape[2:])
        expl.delta = delta.float()
        return expl


class _Reference(Target):
    """``target`` scored against a fixed ``inputs`` reference instead of the model's input."""

    def __init__(self, target: Target, reference: Tensor):
        self.target, self.reference = target, reference

    def __repr__(self) -> str:
        return repr(self.target)

    def select(self, output: Any) -> Any:
        return output  # the wrapped target selects its own part

    def score(self, out: Any, inputs: Tensor) -> Tensor:
        return self.target(out, self.reference)
