"""The gradient-free CAMs: Score-CAM, Ablation-CAM and Eigen-CAM, for any target.

They share the CAM plumbing (layer, one activation pass, the result) but weight the channels without
gradients. Score-CAM and Ablation-CAM run ``C`` extra forward passes per image (one per channel of
the layer, ``batch_size`` at a time); every pass scores all ``K`` targets at once, so K targets cost
what one costs. Per-sample target choices (``Class()``'s argmax, ``Segment``'s predicted pixels) are
frozen at the unperturbed output (:meth:`~areacam.targets.Target.bind`), and a target that reads the
input (:class:`~areacam.targets.ReconstructionError`) compares with the unperturbed image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import finish, layer_activations
from .cam import CAM
from .checks import check_int
from .explanation import Explanation
from .layers import LayerView, replace_part
from .state import check_input, explaining
from .targets import Target
from .vjp import score_targets

__all__ = ["AblationCAM", "EigenCAM", "ScoreCAM", "eigen_projection"]

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


class _PerturbedCAM(CAM):
    """A CAM whose channel weights come from ``C`` extra forward passes per image."""

    def __init__(self, model: nn.Module, layer: nn.Module | str, batch_size: int = 32, **kwargs: object):
        super().__init__(model, layer, **kwargs)
        self.batch_size = check_int("batch_size", batch_size)

    def __call__(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, H, W)`` batch ``x``."""
        x = check_input(self.model, x)
        self._layer = layer = layer_activations(self.model, self.layer, x, targets, self.view)
        acts, scores = layer.acts, layer.scores
        channel_scores = torch.empty(acts.shape[0], len(layer.targets), acts.shape[1], dtype=acts.dtype,
                                     device=acts.device)
        with explaining(self.model), torch.no_grad():
            for b in range(x.shape[0]):
                bound = [target.bind(b, layer.output) for target in layer.targets]
                for start in range(0, acts.shape[1], self.batch_size):
                    stop = min(start + self.batch_size, acts.shape[1])
                    channel_scores[b, :, start:stop] = self._scores(x, b, start, stop, bound).T
        weights = self.channel_weights(channel_scores, scores)
        raw = torch.relu(torch.einsum("bkc,bc...->bk...", weights, acts))
        return finish(raw, raw, scores, layer.targets, x.shape[2:], str(layer.layout))

    def _scores(self, x: Tensor, b: int, start: int, stop: int, bound: list[Target]) -> Tensor:
        """``(n, K)`` target scores of the passes for channels ``start:stop`` of image ``b``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def channel_weights(self, channel_scores: Tensor, scores: Tensor) -> Tensor:
        """``(B, K, C)`` weights from the ``(B, K, C)`` per-channel scores and the ``(B, K)`` scores."""
        raise NotImplementedError  # pragma: no cover - abstract


class ScoreCAM(_PerturbedCAM):
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

    def _scores(self, x: Tensor, b: int, start: int, stop: int, bound: list[Target]) -> Tensor:
        size = tuple(x.shape[2:])
        chunk = self._layer.acts[b : b + 1, start:stop]
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
        return score_targets(bound, self.model(masked), reference).to(masks.dtype)

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


class AblationCAM(_PerturbedCAM):
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

    def __call__(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        if self.view.reshape is not None:
            raise ValueError("Ablation-CAM cannot zero a channel through reshape=: pass layout= instead")
        self._replacement: list[Tensor | None] = [None]
        with _replaced_output(self.layer, self.view, self._replacement):
            return super().__call__(x, targets)

    def _scores(self, x: Tensor, b: int, start: int, stop: int, bound: list[Target]) -> Tensor:
        count = stop - start
        value = self._layer.value
        ablated = value[b : b + 1].repeat(count, *(1,) * (value.dim() - 1))
        rows = torch.arange(count, device=value.device)
        self._layer.layout(ablated)[rows, rows + start] = 0  # a view of the layer's own layout
        self._replacement[0] = ablated
        try:
            inputs = x[b : b + 1].expand(count, *x.shape[1:])
            return score_targets(bound, self.model(inputs), inputs).to(self._layer.acts.dtype)
        finally:
            self._replacement[0] = None

    def channel_weights(self, channel_scores: Tensor, scores: Tensor) -> Tensor:
        original = scores.unsqueeze(2)
        return (original - channel_scores) / torch.where(original == 0, 1.0, original)


def eigen_projection(acts: Tensor) -> Tensor:
    """Projection of ``(B, C, h, w)`` activations on their first principal component: ``(B, h, w)``.

    Per image, the ``(h*w, C)`` activations are centred per channel and projected on the first right
    singular vector, exactly as pytorch-grad-cam's ``get_2d_projection``. The SVD runs in numpy on
    the CPU (in the activations' dtype, as pytorch-grad-cam's) so that its sign, which the SVD leaves
    arbitrary, is pytorch-grad-cam's.
    """
    batch, channels = acts.shape[:2]
    if channels < 2:
        raise ValueError(
            f"Eigen-CAM needs a layer with at least 2 channels, got {channels}: the principal component "
            "of one channel is that channel up to an arbitrary sign"
        )
    flat = acts.detach().cpu().flatten(2).transpose(1, 2).numpy()  # (B, h*w, C)
    projections = []
    for matrix in flat:
        centred = matrix - matrix.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projections.append(centred @ vt[0])
    out = torch.from_numpy(np.stack(projections).astype(flat.dtype))
    return out.view(batch, *acts.shape[2:]).to(acts.device)


class EigenCAM(CAM):
    """Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the activations.

    The map does not depend on the target: every target column of ``raw`` and ``maps`` is the same
    map (``scores`` are still each target's). One forward pass, no backward pass. The component's
    sign is the SVD's own, as in pytorch-grad-cam (see :func:`eigen_projection`); with
    ``sign_correction=True`` it is flipped where the projection's largest magnitude is negative
    (pytorch-grad-cam's Seg-Eigen-CAM correction), so the salient side is the positive one.
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str, sign_correction: bool = False, **kwargs: object):
        super().__init__(model, layer, **kwargs)
        self.sign_correction = bool(sign_correction)

    def __call__(self, x: Tensor, targets: Target | Sequence[Target]) -> Explanation:
        """Explain ``targets`` (one or K) for the ``(B, C, H, W)`` batch ``x``; all K maps are equal."""
        layer = layer_activations(self.model, self.layer, x, targets, self.view)
        scores, targets = layer.scores, layer.targets
        projection = eigen_projection(layer.acts)
        if self.sign_correction:
            flat = projection.flatten(1)
            flip = flat.amin(dim=1).abs() > flat.amax(dim=1).abs()
            projection = torch.where(flip.view(-1, *(1,) * (projection.dim() - 1)), -projection, projection)
        raw = torch.relu(projection).unsqueeze(1).expand(-1, len(targets), *projection.shape[1:]).contiguous()
        return finish(raw, raw, scores, targets, x.shape[2:], str(layer.layout))
