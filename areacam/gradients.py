"""Input-gradient methods: Saliency, InputXGradient, SmoothGrad, GuidedBackprop, GuidedGradCAM.

``raw`` is the signed input gradient ``(B, K, C, H, W)``; ``maps`` is the channel maximum of its
absolute value, min-max normalised per map. Signals ``(B, C, L)`` and volumes ``(B, C, D, H, W)``
work alike: ``raw`` ``(B, K, C, *spatial)``, ``maps`` ``(B, K, *spatial)``.

Guided backpropagation stops negative gradients at every ``nn.ReLU`` module, in-place ones
included, through a forward hook that leaves the module untouched. Activations called as
functions (``F.relu``, ``torch.relu``) are not modules and pass gradients through unguided, as do
other activation modules (``GELU``, ``LeakyReLU``...): for such models the result is closer to
plain saliency, and a warning says so when the model has no ``nn.ReLU`` at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .base import Explainer, finish, input_gradients
from .cam import GradCAM
from .explanation import Explanation, upsample
from .state import check_input
from .targets import Target, as_target_list

__all__ = ["GuidedBackprop", "GuidedGradCAM", "InputXGradient", "Saliency", "SmoothGrad", "guided_relus"]


def gradient_maps(raw: Tensor) -> Tensor:
    """``(B, K, C, *spatial)`` signed gradients -> ``(B, K, *spatial)`` channel max of the absolute value."""
    return raw.abs().amax(dim=2)


class _GradientExplainer(Explainer):
    """Shared call: input gradients of K targets from one forward pass."""

    def __init__(self, model: nn.Module, batched: bool | None = None):
        super().__init__(model)
        self.batched = batched

    def __call__(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, *spatial)`` batch ``x`` (1, 2 or 3 spatial dims)."""
        grads, scores, targets = input_gradients(self.model, x, targets, self.batched, self._hooks())
        raw = self.attribute(x, grads)
        return finish(raw, gradient_maps(raw), scores, targets, x.shape[2:])

    def _hooks(self):
        return None

    def attribute(self, x: Tensor, grads: Tensor) -> Tensor:
        """``raw`` from the input ``x`` and the gradients ``(B, K, C, *spatial)``."""
        return grads


class Saliency(_GradientExplainer):
    """Vanilla gradient (Simonyan et al.): ``raw`` is the signed input gradient."""


class InputXGradient(_GradientExplainer):
    """Input x gradient: ``raw`` is ``x * grad`` per target."""

    def attribute(self, x: Tensor, grads: Tensor) -> Tensor:
        return x.detach().float().unsqueeze(1) * grads


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
    handles = []
    try:
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                handles.append(module.register_forward_hook(_guide))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


class GuidedBackprop(_GradientExplainer):
    """Guided backpropagation (Springenberg et al.): negative gradients stop at every ``nn.ReLU``."""

    def _hooks(self):
        if not any(isinstance(module, nn.ReLU) for module in self.model.modules()):
            warnings.warn(
                f"{type(self.model).__name__} has no nn.ReLU module: guided backprop equals saliency here "
                "(functional F.relu calls and other activations are not guided)",
                stacklevel=3,
            )
        return guided_relus(self.model)


class SmoothGrad(_GradientExplainer):
    """SmoothGrad (Smilkov et al.): the mean input gradient over ``samples`` noisy copies of ``x``.

    ``noise`` is the noise standard deviation as a fraction of each image's value range (the paper's
    convention); ``random_state`` seeds it. ``scores`` are the mean over the noisy samples. Samples
    run ``chunk`` images per forward pass. Per-sample target arguments (``Class([...])``, ``(B, H, W)``
    masks) apply to every noisy copy of their sample; ``Class()`` takes each noisy copy's argmax.
    """

    def __init__(
        self,
        model: nn.Module,
        samples: int = 25,
        noise: float = 0.15,
        random_state: int | None = None,
        chunk: int = 64,
        batched: bool | None = None,
    ):
        super().__init__(model, batched)
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {samples!r}")
        if not noise >= 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
        self.samples, self.noise, self.random_state, self.chunk = samples, float(noise), random_state, chunk

    def __call__(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        x = check_input(self.model, x)
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
        per_pass = max(1, self.chunk // batch)
        grad_sum = score_sum = None
        for start in range(0, self.samples, per_pass):
            count = min(per_pass, self.samples - start)
            noisy = x.detach().repeat(count, *ones)  # copy-major: copy c of sample b is row c * B + b
            noise = torch.randn(noisy.shape, generator=generator, device=x.device, dtype=x.dtype)
            noisy = noisy + noise * sigma.repeat(count, *ones)
            bound = [target.bind(list(range(batch)) * count) for target in targets]
            grads, scores, _ = input_gradients(self.model, noisy, bound, self.batched)
            grads = grads.view(count, batch, *grads.shape[1:]).sum(0)
            scores = scores.view(count, batch, -1).sum(0)
            grad_sum = grads if grad_sum is None else grad_sum + grads
            score_sum = scores if score_sum is None else score_sum + scores
        raw = grad_sum / self.samples
        return finish(raw, gradient_maps(raw), score_sum / self.samples, targets, x.shape[2:])


class GuidedGradCAM(Explainer):
    """Guided Grad-CAM: guided backprop times the upsampled Grad-CAM (raw, unnormalised; linear, bilinear or trilinear).

    Two passes (guided and plain gradients differ), each computing all K targets.
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str, batched: bool | None = None):
        super().__init__(model)
        self.gradcam = GradCAM(model, layer, batched)
        self.guided = GuidedBackprop(model, batched)

    def __call__(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, *spatial)`` batch ``x`` (1, 2 or 3 spatial dims)."""
        cam = self.gradcam(x, targets)
        guided = self.guided(x, cam.targets)
        raw = guided.raw * upsample(cam.raw, tuple(x.shape[2:])).unsqueeze(2)
        return finish(raw, gradient_maps(raw), cam.scores, cam.targets, x.shape[2:])
