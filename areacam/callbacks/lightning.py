"""The PyTorch Lightning callback (the ``[lightning]`` extra): :func:`~areacam.callbacks.explain_epoch`
at the end of every ``every``-th training epoch, logged to the trainer's TensorBoard logger."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from areacam._util.checks import check_int
from areacam._util.optional import require
from areacam.callbacks.watch import EpochMaps, explain_epoch, log_explanation
from areacam.core.explainer import Explainer
from areacam.targets.base import Target

# Lightning is imported only here (on first use of ExplainEveryEpoch); its Callback is the base class.
Callback: Any = require("lightning.pytorch", "areacam.callbacks.ExplainEveryEpoch", extra="lightning").Callback

__all__ = ["ExplainEveryEpoch"]


class ExplainEveryEpoch(Callback):
    """A Lightning callback that explains the fixed samples ``x`` for ``targets`` after every ``every``-th
    training epoch (epochs 0, every, 2 every, ...), without changing the training.

    Each explanation goes to every logger of the trainer whose ``experiment`` is a TensorBoard
    ``SummaryWriter`` (one image per sample: the input, then one overlay per target; one scalar per score,
    the epoch as the step) and to :attr:`history` (an :class:`~areacam.callbacks.EpochMaps`; draw it with
    ``callback.history.plot()`` or :func:`areacam.across_epochs_figure`). ``explainer`` is built on the
    trained module (or one of its submodules): ``ac.GradCAM(module, "features.3")``. ``targets`` is read
    at every epoch and must keep its length. Random states, train/eval flags and ``.grad`` are put back
    (:func:`~areacam.callbacks.untouched`), so the weights a ``Trainer.fit`` ends with are the same, bit
    for bit, with and without the callback. Runs on the global-zero process only.
    """

    def __init__(
        self,
        x: Tensor,
        targets: Target | Sequence[Target],
        explainer: Explainer,
        every: int = 1,
        tag: str = "explanations",
    ):
        super().__init__()
        if not isinstance(explainer, Explainer):
            raise TypeError(f"explainer must be an areacam explainer, got {type(explainer).__name__}")
        self.x, self.targets, self.explainer = x, targets, explainer
        self.every = check_int("every", every)
        self.tag = tag
        self.history = EpochMaps()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = int(trainer.current_epoch)
        if epoch % self.every or not trainer.is_global_zero:
            return
        writers = [logger.experiment for logger in trainer.loggers if hasattr(logger.experiment, "add_image")]
        history = explain_epoch(self.x, self.targets, self.explainer, epoch, self.history, tag=self.tag)
        assert history.images is not None  # set by the first call
        for writer in writers:
            log_explanation(writer, history.images, history.maps[-1], history.scores[-1], epoch, self.tag)
            writer.flush()
