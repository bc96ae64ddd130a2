"""Input-gradient methods: Saliency, InputXGradient, SmoothGrad, GuidedBackprop.

``raw`` is the signed input gradient ``(B, K, C, H, W)``; ``maps`` is the channel maximum of its
absolute value, min-max normalised per map. Signals ``(B, C, L)`` and volumes ``(B, C, D, H, W)``
work alike: ``raw`` ``(B, K, C, *spatial)``, ``maps`` ``(B, K, *spatial)``.

Guided backpropagation stops negative gradients at every ``nn.ReLU`` module, in-place ones
included, through a forward hook that leaves the module untouched. That is captum's definition
(its ``GuidedBackprop`` overrides the gradient of ``nn.ReLU`` modules only), kept so the numbers
match it on any network. Everything else passes gradients through unguided: activations called as
functions (``F.relu``, ``torch.relu``) and other activation modules (``GELU``, ``SiLU``,
``LeakyReLU``, ``ReLU6``...). On a GELU/SiLU network (ViTs, ConvNeXts, EfficientNets) guided
backprop is therefore plain saliency with any ``nn.ReLU`` modules guided, and a warning names how
many ``nn.ReLU`` modules were guided and how many other activation modules, by type, were not.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from areacam._util.checks import check_int
from areacam.core.explainer import Explainer
from areacam.core.explanation import Explanation
from areacam.core.inputs import check_input
from areacam.layers.hooks import Hooks
from areacam.methods.passes import finish, input_gradients
from areacam.methods.registry import register
from areacam.targets.base import Target, as_target_list

__all__ = [
    "ACTIVATIONS",
    "GradientExplainer",
    "GuidedBackprop",
    "InputXGradient",
    "Saliency",
    "SmoothGrad",
    "gradient_maps",
    "guided_relus",
    "unguided_activations",
]

# Hidden-layer activations that guided backprop leaves unguided (only nn.ReLU is, as in captum): named
# in its warning. Output squashers (Sigmoid, Tanh) are not counted.
ACTIVATIONS = (
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.ReLU6,
    nn.Hardswish,
    nn.Softplus,
)


def gradient_maps(raw: Tensor) -> Tensor:
    """``(B, K, C, *spatial)`` signed gradients -> ``(B, K, *spatial)`` channel max of the absolute value."""
    return raw.abs().amax(dim=2)


class GradientExplainer(Explainer):
    """Input gradients of K targets from one forward pass; subclasses change :meth:`attribute` (what is
    made of the gradients) or :meth:`hooks` (what is active during the pass).

    ``create_graph=True`` keeps the graph of ``raw``, ``maps`` and ``scores`` to the parameters (and to
    ``x`` where it requires grad), for a loss on the input gradient (e.g. Ross et al.'s RRR); the model
    runs in the caller's train/eval mode and every target takes its own backward pass."""

    keeps_graph = True

    def __init__(self, model: nn.Module, batched: bool | None = None, *, create_graph: bool = False):
        super().__init__(model, create_graph)
        self.batched = batched

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, *spatial)`` batch ``x`` (1, 2 or 3 spatial dims)."""
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        grads, scores, targets = input_gradients(
            self.model, x, targets, self.batched, self.hooks(), fwd, self.create_graph
        )
        raw = self.attribute(x, grads)
        return finish(raw, gradient_maps(raw), scores, targets, x.shape[2:])

    def hooks(self) -> AbstractContextManager | None:
        """A context manager active during the forward and backward passes (``None``: nothing)."""
        return None

    def attribute(self, x: Tensor, grads: Tensor) -> Tensor:
        """``raw`` from the input ``x`` and the gradients ``(B, K, C, *spatial)``."""
        return grads


@register("saliency", layer=False, summary="input gradient", peer="captum.attr.Saliency")
class Saliency(GradientExplainer):
    """Vanilla gradient (Simonyan et al.): ``raw`` is the signed input gradient."""


@register("inputxgradient", layer=False, summary="input x gradient", peer="captum.attr.InputXGradient")
class InputXGradient(GradientExplainer):
    """Input x gradient: ``raw`` is ``x * grad`` per target."""

    def attribute(self, x: Tensor, grads: Tensor) -> Tensor:
        return (x if self.create_graph else x.detach()).to(grads.dtype).unsqueeze(1) * grads


class _GuidedReLU(torch.autograd.Function):
    """Identity forward; backward passes only positive gradients where the ReLU output is positive."""

    @staticmethod
    def forward(ctx, out: Tensor) -> Tensor:
        ctx.save_for_backward(out > 0)
        return out.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (active,) = ctx.saved_tensors
        return grad.clamp(min=0) * active


def _guide(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor:
    return _GuidedReLU.apply(output)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[int]:
    """Guide every ``nn.ReLU`` of ``model`` while inside; yields how many were found.

    The modules themselves (``inplace`` included) are not changed: a forward hook wraps their output,
    and all hooks come off on exit, also when the body raises.
    """
    with Hooks() as hooks:
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                hooks.add(module.register_forward_hook(_guide))
        yield len(hooks)


def unguided_activations(model: nn.Module) -> Counter[str]:
    """Activation modules of ``model`` that guided backprop leaves unguided, counted by type name."""
    return Counter(
        type(m).__name__ for m in model.modules() if isinstance(m, ACTIVATIONS) and not isinstance(m, nn.ReLU)
    )


@register(
    "guided-backprop",
    layer=False,
    summary="guided backpropagation",
    aliases=("guided-backpropagation",),
    peer="captum.attr.GuidedBackprop",
)
class GuidedBackprop(GradientExplainer):
    """Guided backpropagation (Springenberg et al.): negative gradients stop at every ``nn.ReLU``.

    Only ``nn.ReLU`` modules are guided (captum's choice); a model with other activation modules
    (GELU, SiLU...) or without any ``nn.ReLU`` gets a warning naming what was and was not guided.
    """

    def hooks(self) -> AbstractContextManager:
        relus = sum(isinstance(module, nn.ReLU) for module in self.model.modules())
        others = unguided_activations(self.model)
        if others or not relus:
            left = ", ".join(f"{count} {name}" for name, count in sorted(others.items()))
            left = left or "no other activation module"
            warnings.warn(
                f"guided backprop on {type(self.model).__name__} guides {relus} nn.ReLU module(s) and leaves "
                f"{left} unguided (as captum does); functional F.relu calls are not guided either"
                + ("; with no nn.ReLU it equals saliency" if not relus else ""),
                stacklevel=3,
            )
        return guided_relus(self.model)


def _smoothgrad(model: nn.Module, layer: nn.Module | None, size: tuple[int, ...]) -> SmoothGrad:
    return SmoothGrad(model, num_samples=16, random_state=0)


@register("smoothgrad", layer=False, summary="SmoothGrad (16 samples)", build=_smoothgrad)
class SmoothGrad(GradientExplainer):
    """SmoothGrad (Smilkov et al.): the mean input gradient over ``num_samples`` noisy copies of ``x``.

    ``noise`` is the noise standard deviation as a fraction of each image's value range (the paper's
    convention); ``random_state`` seeds it. ``scores`` are the mean over the noisy samples. Samples
    run ``batch_size`` images per forward pass. Per-sample target arguments (``Class([...])``, ``(B, H, W)``
    masks) apply to every noisy copy of their sample; ``Class()`` takes each noisy copy's argmax.
    """

    def __init__(
        self,
        model: nn.Module,
        num_samples: int = 25,
        noise: float = 0.15,
        random_state: int | None = None,
        batch_size: int = 64,
        batched: bool | None = None,
        *,
        create_graph: bool = False,
    ):
        super().__init__(model, batched, create_graph=create_graph)
        self.num_samples = check_int("num_samples", num_samples)
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        self.batch_size = check_int("batch_size", batch_size)
        self.noise, self.random_state = float(noise), random_state

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        x = check_input(self.model, x)
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        targets = as_target_list(targets)
        batch = x.shape[0]
        generator = torch.Generator(device=x.device)
        if self.random_state is None:
            generator.seed()
        else:
            generator.manual_seed(self.random_state)
        flat = x.detach().flatten(1)
        ones = [1] * (x.dim() - 1)
        sigma = (self.noise * (flat.amax(1) - flat.amin(1))).view(-1, *ones)
        per_pass = max(1, self.batch_size // batch)
        grad_sum: Tensor | None = None
        score_sum: Tensor | None = None
        for start in range(0, self.num_samples, per_pass):
            count = min(per_pass, self.num_samples - start)
            base = x if self.create_graph else x.detach()
            noisy = base.repeat(count, *ones)  # copy-major: copy c of sample b is row c * B + b
            noise = torch.randn(noisy.shape, generator=generator, device=x.device, dtype=x.dtype)
            noisy = noisy + noise * sigma.repeat(count, *ones)
            bound = [target.bind(list(range(batch)) * count) for target in targets]
            grads, scores, _ = input_gradients(
                self.model, noisy, bound, self.batched, fwd=fwd.tile(count), create_graph=self.create_graph
            )
            grads = grads.view(count, batch, *grads.shape[1:]).sum(0)
            scores = scores.view(count, batch, -1).sum(0)
            grad_sum = grads if grad_sum is None else grad_sum + grads
            score_sum = scores if score_sum is None else score_sum + scores
        assert grad_sum is not None and score_sum is not None  # num_samples >= 1
        raw = grad_sum / self.num_samples
        return finish(raw, gradient_maps(raw), score_sum / self.num_samples, targets, x.shape[2:])
