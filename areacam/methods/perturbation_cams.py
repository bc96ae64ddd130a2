"""The perturbation CAMs: Score-CAM and Ablation-CAM, for any target.

They read a layer like the gradient CAMs but weight its channels without gradients: ``C`` extra forward
passes per image (one per channel of the layer, ``batch_size`` at a time), every pass scoring all ``K``
targets at once, so K targets cost what one costs. Per-sample target choices (``Class()``'s argmax,
``Segment``'s predicted pixels) are frozen at the unperturbed output (:meth:`~areacam.Target.bind`),
and a target that reads the input (:class:`~areacam.ReconstructionError`) compares with the
unperturbed image.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from areacam._util.checks import check_int
from areacam.core.autograd import score_targets
from areacam.core.explanation import Explanation
from areacam.core.forward import ForwardArgs
from areacam.core.inputs import check_input
from areacam.core.outputs import replace_part
from areacam.core.state import explaining
from areacam.layers.layout import LayerView, ViewArgs
from areacam.methods.base import LayerExplainer
from areacam.methods.passes import LayerActivations, finish, layer_activations
from areacam.methods.registry import register
from areacam.targets.base import Target

if TYPE_CHECKING:  # pragma: no cover
    from typing_extensions import Unpack

__all__ = ["AblationCAM", "PerturbationCAM", "ScoreCAM"]

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


@dataclass
class Passes:
    """One call's extra forward passes: the input, the layer's activations and what the passes replace.

    Lives for one call only (an explainer holds no per-call state, so one instance can run calls
    concurrently): ``replacement[0]`` is the layer output an Ablation-CAM pass substitutes, ``None``
    outside a pass. ``fwd`` holds the model's extra arguments; a pass on copies of image ``b`` takes
    their row ``b`` (:meth:`~areacam.core.forward.ForwardArgs.row`).
    """

    x: Tensor
    layer: LayerActivations
    fwd: ForwardArgs
    replacement: list[Tensor | None] = field(default_factory=lambda: [None])


class PerturbationCAM(LayerExplainer):
    """A CAM whose channel weights come from ``C`` extra forward passes per image.

    Takes the layer and its layout keywords as every layer explainer (:class:`~areacam.methods.base.
    LayerExplainer`) and ``batch_size``, the passes per forward call. A subclass defines the passes
    (:meth:`channel_scores`) and how their scores weigh the channels (:meth:`channel_weights`).
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str,
        batch_size: int = 32,
        *,
        create_graph: bool = False,
        **view: Unpack[ViewArgs],
    ):
        super().__init__(model, layer, create_graph, **view)
        self.batch_size = check_int("batch_size", batch_size)

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, H, W)`` batch ``x``.

        ``forward_args`` / ``forward_kwargs``: extra model arguments; per-sample ones follow each image's
        passes.
        """
        return self._explain(self._passes(x, targets, forward_args, forward_kwargs))

    def _passes(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any],
        forward_kwargs: Mapping[str, Any] | None,
    ) -> Passes:
        """The unperturbed pass: the checked input, the layer's activations, the scores."""
        x = check_input(self.model, x)
        fwd = self.forward_args(x, forward_args, forward_kwargs)
        return Passes(x, layer_activations(self.model, self.layer, x, targets, self.view, fwd), fwd)

    def _explain(self, passes: Passes) -> Explanation:
        layer, x = passes.layer, passes.x
        acts, scores = layer.acts, layer.scores
        channel_scores = torch.empty(
            acts.shape[0], len(layer.targets), acts.shape[1], dtype=acts.dtype, device=acts.device
        )
        with explaining(self.model), torch.no_grad():
            for b in range(x.shape[0]):
                bound = [target.bind(b, layer.output) for target in layer.targets]
                for start in range(0, acts.shape[1], self.batch_size):
                    stop = min(start + self.batch_size, acts.shape[1])
                    channel_scores[b, :, start:stop] = self.channel_scores(passes, b, start, stop, bound).T
        weights = self.channel_weights(channel_scores, scores)
        raw = torch.relu(torch.einsum("bkc,bc...->bk...", weights, acts))
        return finish(raw, raw, scores, layer.targets, x.shape[2:], str(layer.layout))

    @abstractmethod
    def channel_scores(self, passes: Passes, b: int, start: int, stop: int, bound: list[Target]) -> Tensor:
        """``(n, K)`` target scores of the passes for channels ``start:stop`` of image ``b``."""

    @abstractmethod
    def channel_weights(self, channel_scores: Tensor, scores: Tensor) -> Tensor:
        """``(B, K, C)`` weights from the ``(B, K, C)`` per-channel scores and the ``(B, K)`` scores."""


@register(
    "scorecam",
    layer=True,
    summary="Score-CAM (a forward pass per layer channel)",
    aliases=("score-cam",),
    peer="pytorch_grad_cam.ScoreCAM",
)
class ScoreCAM(PerturbationCAM):
    """Score-CAM (Wang et al. 2020): activations weighted by the target's score on masked inputs.

    Each channel's activation is upsampled to the input's size (bilinear, ``align_corners=True``),
    min-max normalised to ``[0, 1]`` (``+1e-8`` in the denominator) and multiplied into the input;
    the channel's weight is the softmax over channels of the target's scores on those masked inputs.
    This is pytorch-grad-cam's rule, and the paper's (the softmax over channels is shift-invariant,
    so subtracting the score of a baseline input changes nothing).

    Region targets: the same softmax is applied to any target's score, as pytorch-grad-cam does for
    its ``SemanticSegmentationTarget`` (so ``Segment`` and ``Area(mask=..., channel=c)`` equal it).
    A region score is a sum, not a logit: the softmax sharpens as the region grows, and over a large
    region one channel can take all the weight. ``Area(..., reduce="mean")`` puts the score on the
    scale of one logit; pick it when the map looks like a single channel.

    Costs ``ceil(C / batch_size)`` forward passes of ``batch_size`` images per image for all K
    targets together (pytorch-grad-cam: that many per target).
    """

    def channel_scores(self, passes: Passes, b: int, start: int, stop: int, bound: list[Target]) -> Tensor:
        x = passes.x
        size = tuple(x.shape[2:])
        chunk = passes.layer.acts[b : b + 1, start:stop]
        if tuple(chunk.shape[2:]) != size:
            mode = _LINEAR_MODES.get(len(size))
            if mode is None:
                raise ValueError(f"Score-CAM cannot upsample a {len(size)}-d activation to the input's size")
            chunk = F.interpolate(chunk, size=size, mode=mode, align_corners=True)
        flat = chunk.flatten(2)
        low = flat.amin(dim=2, keepdim=True)
        high = flat.amax(dim=2, keepdim=True)
        masks = ((flat - low) / (high - low + 1e-8)).view(stop - start, 1, *size)
        masked = (x[b : b + 1].to(masks.dtype) * masks).to(x.dtype)
        reference = x[b : b + 1].expand_as(masked)
        output = passes.fwd.row(b, stop - start).run(self.model, masked)
        return score_targets(bound, output, reference).to(masks.dtype)

    def channel_weights(self, channel_scores: Tensor, scores: Tensor) -> Tensor:
        return torch.softmax(channel_scores, dim=2)


@contextmanager
def _replaced_output(layer: nn.Module, view: LayerView, replacement: list[Tensor | None]) -> Iterator[None]:
    """While inside, ``layer``'s output (the part ``view`` picks) is ``replacement[0]`` when that is set.

    A forward hook, removed on exit, also when the body raises.
    """

    def hook(module: nn.Module, inputs: tuple, output: object) -> object:
        new = replacement[0]
        if new is None:
            return None
        part, key = view.pick(output, "the ablated layer")
        return replace_part(output, key, new.to(part.dtype))

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@register(
    "ablationcam",
    layer=True,
    summary="Ablation-CAM (a forward pass per layer channel)",
    aliases=("ablation-cam",),
    peer="pytorch_grad_cam.AblationCAM",
)
class AblationCAM(PerturbationCAM):
    """Ablation-CAM (Desai & Ramaswamy 2020): weights from the score drop when a channel is zeroed.

    Each channel of the layer's output is set to zero in turn (the rest of the output kept, the
    model continued from there); its weight is ``(score - ablated score) / score``, as in
    pytorch-grad-cam. Dividing by the score only rescales a map (and flips it for a negative score);
    where the score is exactly 0 the plain drop is used instead, so no NaN appears.

    pytorch-grad-cam zeroes a channel when the layer's minimum is 0 (any layer after a ReLU) and
    otherwise writes a huge negative value; areacam always zeroes, as the paper does, so both agree
    on layers that end in a ReLU. A token layer's channel is zeroed on the grid tokens (prefix tokens
    are kept); a ``reshape=`` reading cannot be written back and raises. Costs ``ceil(C / batch_size)``
    forward passes of ``batch_size`` copies of each image for all K targets together (the layers
    below still run on every copy).
    """

    def __call__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        forward_args: Sequence[Any] = (),
        forward_kwargs: Mapping[str, Any] | None = None,
    ) -> Explanation:
        if self.view.reshape is not None:
            raise ValueError("Ablation-CAM cannot zero a channel through reshape=: pass layout= instead")
        passes = self._passes(x, targets, forward_args, forward_kwargs)
        with _replaced_output(self.layer, self.view, passes.replacement):
            return self._explain(passes)

    def channel_scores(self, passes: Passes, b: int, start: int, stop: int, bound: list[Target]) -> Tensor:
        count, x = stop - start, passes.x
        value = passes.layer.value
        ablated = value[b : b + 1].repeat(count, *(1,) * (value.dim() - 1))
        rows = torch.arange(count, device=value.device)
        passes.layer.layout(ablated)[rows, rows + start] = 0  # a view of the layer's own layout
        passes.replacement[0] = ablated
        try:
            inputs = x[b : b + 1].expand(count, *x.shape[1:])
            output = passes.fwd.row(b, count).run(self.model, inputs)
            return score_targets(bound, output, inputs).to(passes.layer.acts.dtype)
        finally:
            passes.replacement[0] = None

    def channel_weights(self, channel_scores: Tensor, scores: Tensor) -> Tensor:
        original = scores.unsqueeze(2)
        return (original - channel_scores) / torch.where(original == 0, 1.0, original)
