"""Explanations of fixed samples during training, without changing the training.

:func:`explain_epoch` is the plain function for a hand-written loop; the Lightning callback
(:class:`areacam.callbacks.lightning.ExplainEveryEpoch`) calls it at the end of a training epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from areacam.core.explainer import Explainer
from areacam.core.state import model_device_dtype
from areacam.targets.base import Target, as_target_list
from areacam.viz.images import overlay, to_rgb
from areacam.viz.training import across_epochs_figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["EpochMaps", "ImageWriter", "explain_epoch", "log_explanation", "untouched"]


class ImageWriter(Protocol):
    """What :func:`explain_epoch` writes to: ``torch.utils.tensorboard.SummaryWriter`` has both."""

    def add_image(self, tag: str, img_tensor: Any, global_step: int | None = None, **kwargs: Any) -> Any: ...

    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None, **kwargs: Any) -> Any: ...


@dataclass
class EpochMaps:
    """The explanations of the same samples after each explained epoch (on the CPU, detached).

    - ``epochs``: the epoch of each entry;
    - ``maps``: one ``(B, K, H, W)`` float32 tensor per entry, in ``[0, 1]``;
    - ``scores``: one ``(B, K)`` tensor per entry;
    - ``images``: the ``(B, C, H, W)`` samples, for the overlays.
    """

    epochs: list[int] = field(default_factory=list)
    maps: list[Tensor] = field(default_factory=list)
    scores: list[Tensor] = field(default_factory=list)
    images: Tensor | None = None

    def __len__(self) -> int:
        return len(self.epochs)

    def plot(self, target: int = 0, path: str | Path | None = None, **kwargs: Any) -> Figure:
        """:func:`areacam.across_epochs_figure` of target ``target``: rows = samples, columns = epochs."""
        return across_epochs_figure(
            self.maps, self.images, epochs=self.epochs, scores=self.scores, target=target, path=path, **kwargs
        )


@contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Leave no trace of the body on training: the random number generators (python ``random``,
    numpy's global one, torch's CPU one and every initialised CUDA device's), each module's
    train/eval flag and each parameter's ``.grad`` are put back afterwards, also when the body raises."""
    python, numpy = random.getstate(), np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.grad) for param in model.parameters()]
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        for module, mode in modes:
            module.training = mode
        for param, grad in grads:
            param.grad = grad


def _check_count(history: EpochMaps, targets: list[Target], x: Tensor) -> None:
    if not history.maps:
        return
    known = history.maps[0].shape[1]
    if len(targets) != known:
        raise ValueError(
            f"the target list changed length: {known} target(s) at epoch {history.epochs[0]}, {len(targets)} now; "
            "an across-epochs record needs the same targets every epoch"
        )
    if history.images is not None and tuple(x.shape) != tuple(history.images.shape):
        raise ValueError(
            f"the samples changed shape: {tuple(history.images.shape)} at epoch {history.epochs[0]}, "
            f"{tuple(x.shape)} now; explain the same samples every epoch"
        )


def log_explanation(writer: ImageWriter, images: Tensor, maps: Tensor, scores: Tensor, step: int, tag: str) -> None:
    """Write one image per sample (the input, then one overlay per target, side by side) as
    ``{tag}/sample_{b}`` and each score as ``{tag}/score/sample_{b}/target_{k}``."""
    rgb = to_rgb(images)
    for b, image in enumerate(rgb):
        panels = [image, *(overlay(image, m) for m in maps[b])]
        writer.add_image(f"{tag}/sample_{b}", np.concatenate(panels, axis=1), step, dataformats="HWC")
        for k, value in enumerate(scores[b].tolist()):
            writer.add_scalar(f"{tag}/score/sample_{b}/target_{k}", value, step)


def explain_epoch(
    x: Tensor,
    targets: Target | Sequence[Target],
    explainer: Explainer,
    epoch: int,
    history: EpochMaps | None = None,
    writer: ImageWriter | None = None,
    tag: str = "explanations",
) -> EpochMaps:
    """Explain the fixed samples ``x`` ``(B, C, H, W)`` for ``targets`` at ``epoch``, without changing the training.

    The explainer runs as it always does (eval mode unless it was built with ``create_graph=True``), inside
    :func:`untouched`: random states, modes and ``.grad`` are put back, so a run with this call ends with the
    same weights, bit for bit, as one without it. The maps and scores are appended to ``history`` (a new
    :class:`EpochMaps` when ``None``), which is returned; ``writer`` (a TensorBoard ``SummaryWriter``)
    receives the overlays and scores with ``epoch`` as the step. The number of targets must not change
    from one call to the next on the same history.

    A hand-written loop::

        history = None
        for epoch in range(epochs):
            train_one_epoch(model)
            history = ac.callbacks.explain_epoch(x, targets, ac.GradCAM(model, "layer4"), epoch, history, writer)
        history.plot(path="epochs.png")
    """
    if not isinstance(explainer, Explainer):
        raise TypeError(
            f"explainer must be an areacam explainer (ac.GradCAM(...), ...), got {type(explainer).__name__}"
        )
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"x must be a (B, C, H, W) tensor of fixed samples, got {getattr(x, 'shape', type(x))}")
    history = EpochMaps() if history is None else history
    target_list = as_target_list(targets)
    _check_count(history, target_list, x)
    device, _ = model_device_dtype(explainer.model)
    with untouched(explainer.model):
        expl = explainer(x.to(device) if device is not None else x, target_list)
    maps, scores = expl.maps.detach().float().cpu(), expl.scores.detach().float().cpu()
    if history.images is None:
        history.images = x.detach().cpu()
    history.epochs.append(int(epoch))
    history.maps.append(maps)
    history.scores.append(scores)
    if writer is not None:
        log_explanation(writer, history.images, maps, scores, int(epoch), tag)
    return history
