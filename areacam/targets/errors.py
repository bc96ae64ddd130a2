"""Targets of a segmentation's errors against the truth: :class:`FalsePositive` and :class:`FalseNegative`.

Both are :class:`~areacam.Segment` targets whose pixels are the error region, so they freeze the
prediction at the explained forward pass exactly as ``Segment`` does (:meth:`Segment.bind`).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor

from areacam.core.outputs import OutputSelector
from areacam.targets.base import Samples, Target, check_samples
from areacam.targets.dense import Segment
from areacam.targets.region import MaskLike, Region, dense_output

__all__ = ["FalseNegative", "FalsePositive", "SegmentationError"]


def _as_truth(truth: MaskLike) -> Region:
    """The integer labels ``truth`` held as a :class:`Region` of weights ``label + 1``.

    A region already reads a shared ``(*spatial)`` or per-sample ``(B, *spatial)`` array against the
    output and takes its rows when bound; the ``+ 1`` keeps label 0 a positive weight.
    """
    if isinstance(truth, np.ndarray):
        truth = torch.from_numpy(np.ascontiguousarray(truth))
    if not isinstance(truth, Tensor):
        raise TypeError(f"truth must be a tensor or numpy array of integer labels, got {type(truth).__name__}")
    if truth.is_floating_point() or truth.is_complex():
        raise TypeError(f"truth must hold integer class labels, got dtype {truth.dtype}")
    if truth.dim() not in (2, 3, 4):
        raise ValueError(
            f"truth must be (H, W) or (B, H, W) for images, (D, H, W) or (B, D, H, W) for volumes, got shape "
            f"{tuple(truth.shape)}"
        )
    if truth.numel() and int(truth.min()) < 0:
        raise ValueError(f"truth labels must be >= 0, got {int(truth.min())}")
    return Region(truth.long() + 1, None)


class SegmentationError(Segment):
    """Base of :class:`FalsePositive` and :class:`FalseNegative`: a ``Segment`` over an error region."""

    kind = "error"

    def __init__(self, cls: int, truth: MaskLike, output: OutputSelector = None):
        if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} class must be an int, got {cls!r}")
        if cls < 0:
            raise IndexError(f"{type(self).__name__} class {cls} must be >= 0")
        super().__init__(int(cls), output=output)
        self.truth = _as_truth(truth)
        self.label = int(cls)  # the class as an int (Segment's cls may be per-sample; here it never is)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cls})"

    def labels(self, out: Tensor) -> Tensor:
        """The truth ``(B or 1, 1, *spatial)`` as labels, checked to fit the ``(B, C, *spatial)`` output."""
        weights = self.truth.weights(out)
        assert weights is not None  # a region built from a mask always has weights
        return weights.round() - 1

    def error(self, predicted: Tensor, is_cls: Tensor) -> Tensor:
        """``(B, 1, *spatial)`` error mask from the predicted-as-``cls`` mask and the truth-is-``cls`` mask."""
        raise NotImplementedError

    def predicted(self, out: Tensor, inputs: Tensor) -> Tensor:
        """``(B, 1, *spatial)`` float mask of the error region (empty: a zero score, a degenerate map).

        A single-channel output predicts class 0 where its logit is > 0 (as for ``Segment``); its
        truth is then a 0/1 mask whose 1s are that class.
        """
        predicted = super().predicted(out, inputs)
        classes = dense_output(out, type(self).__name__, inputs).shape[1]
        labels = self.labels(predicted)
        top = int(labels.max()) if labels.numel() else 0
        if top >= max(classes, 2):  # a 0/255 mask, or labels of another model's classes
            kind = "a 0/1 mask" if classes == 1 else f"labels 0..{classes - 1}"
            raise ValueError(
                f"{type(self).__name__}: the truth holds label {top}, but the output has {classes} channel(s) "
                f"and needs {kind}"
            )
        is_cls = labels.eq(1 if classes == 1 else self.label).to(predicted.dtype)
        return self.error(predicted, is_cls).expand_as(predicted)

    def size(self, output: Any, inputs: Tensor) -> Tensor:
        """``(B,)`` pixels (voxels) of each sample's error region in the model ``output``."""
        region = self.predicted(self.select(output), inputs)
        return region.detach().flatten(1).sum(1)

    def bind(self, samples: Samples, output: Any = None) -> Target:
        rows = check_samples(samples)
        bound = super().bind(rows, output)
        truth = self.truth.take(rows)
        if truth is self.truth:
            return bound
        bound = copy.copy(bound) if bound is self else bound
        assert isinstance(bound, SegmentationError)
        bound.truth = truth
        return bound


class FalsePositive(SegmentationError):
    """Sum of ``logits[:, cls]`` over the pixels predicted as ``cls`` whose truth is another class.

    Why did the model paint these pixels as ``cls``? ``truth`` is ``(H, W)`` or ``(B, H, W)``
    integer labels at the output's size (volumes: ``(D, H, W)`` or ``(B, D, H, W)``). The
    prediction (argmax over channels; logit > 0 for a single-channel output) is frozen at the
    explained forward pass, as :class:`~areacam.Segment` freezes it. No false positive gives a zero
    score and a degenerate map.
    """

    kind = "fp"

    def error(self, predicted: Tensor, is_cls: Tensor) -> Tensor:
        return predicted * (1 - is_cls)


class FalseNegative(SegmentationError):
    """Sum of ``logits[:, cls]`` over the pixels whose truth is ``cls`` but predicted as another class.

    What spoke against ``cls`` there? The gradient of these logits shows what would have raised
    them. ``truth`` and the frozen prediction as for :class:`FalsePositive`; no missed pixel gives a
    zero score and a degenerate map.
    """

    kind = "fn"

    def error(self, predicted: Tensor, is_cls: Tensor) -> Tensor:
        return (1 - predicted) * is_cls
