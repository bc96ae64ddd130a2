"""Targets of object detectors: the score of the detection that matches a box (:class:`Detection`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from areacam.core.outputs import OutputSelector
from areacam.targets.base import Samples, Target, check_samples, take_rows

__all__ = ["Detection", "box_iou", "detections"]


def box_iou(box: Tensor, boxes: Tensor) -> Tensor:
    """IoU of one ``(4,)`` box with ``(N, 4)`` boxes, all ``(x1, y1, x2, y2)``: ``(N,)``, differentiable."""
    x1 = torch.maximum(box[0], boxes[:, 0])
    y1 = torch.maximum(box[1], boxes[:, 1])
    x2 = torch.minimum(box[2], boxes[:, 2])
    y2 = torch.minimum(box[3], boxes[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def detections(output: Any, inputs: Tensor) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Per sample ``(boxes (N, 4) xyxy pixels, scores (N,), labels (N,))`` of a detector's output.

    Reads torchvision's list of per-image dicts (``boxes``, ``scores``, ``labels``) and Hugging Face
    DETR-style outputs (``logits (B, Q, C + 1)`` whose last class is "no object", ``pred_boxes
    (B, Q, 4)`` as normalised ``(cx, cy, w, h)``): each query's score is its largest class
    probability without the no-object class and its label that class, as
    ``post_process_object_detection`` reads them; its box is scaled to the input's pixels.
    """
    batch = inputs.shape[0]
    if isinstance(output, Mapping) and "logits" in output and "pred_boxes" in output:
        logits, boxes = output["logits"], output["pred_boxes"]
        if logits.dim() != 3 or boxes.shape != (*logits.shape[:2], 4) or logits.shape[0] != batch:
            raise ValueError(
                f"a DETR-style output needs logits (B, Q, C+1) and pred_boxes (B, Q, 4) for a batch of {batch}, "
                f"got {tuple(logits.shape)} and {tuple(boxes.shape)}"
            )
        scores, labels = logits.softmax(-1)[..., :-1].max(-1)
        height, width = inputs.shape[-2:]
        cx, cy, w, h = boxes.unbind(-1)
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * boxes.new_tensor(
            [width, height, width, height]
        )
        return [(xyxy[b], scores[b], labels[b]) for b in range(batch)]
    keys = ("boxes", "scores", "labels")
    if isinstance(output, Sequence) and all(isinstance(d, Mapping) and all(k in d for k in keys) for d in output):
        if len(output) != batch:
            raise ValueError(f"the detector returned {len(output)} per-image dicts for a batch of {batch}")
        return [(d["boxes"], d["scores"], d["labels"]) for d in output]
    kind = type(output).__name__
    keys_seen = f" with keys {sorted(map(str, output))}" if isinstance(output, Mapping) else ""
    raise TypeError(
        f"Detection needs a detector's output: a list of per-image dicts with 'boxes', 'scores' and 'labels' "
        f"(torchvision) or a mapping with 'logits' and 'pred_boxes' (DETR), got a {kind}{keys_seen}"
    )


def _check_box(box: Any) -> Tensor:
    values = torch.as_tensor(np.asarray(box.detach().cpu() if isinstance(box, Tensor) else box, dtype=np.float64))
    if values.dim() not in (1, 2) or values.shape[-1] != 4:
        raise ValueError(f"Detection box must be (4,) or (B, 4) as (x1, y1, x2, y2), got shape {tuple(values.shape)}")
    rows = values.view(-1, 4)
    if not torch.isfinite(rows).all():
        raise ValueError(f"Detection box contains NaN or inf: {box!r}")
    bad = (rows[:, 2] <= rows[:, 0]) | (rows[:, 3] <= rows[:, 1]) | (rows[:, :2] < 0).any(1)
    if bad.any():
        raise ValueError(
            f"Detection box {rows[bad][0].tolist()} is not (x1, y1, x2, y2) with 0 <= x1 < x2 and 0 <= y1 < y2"
        )
    return values


class Detection(Target):
    """``IoU + score`` of the detection best overlapping ``box``, or 0, as pytorch-grad-cam's FasterRCNNBoxScoreTarget.

    ``box`` is ``(x1, y1, x2, y2)`` in input pixels, ``(4,)`` for every sample or ``(B, 4)`` one per
    sample. Per sample, the detection with the largest IoU with ``box`` is taken; it scores its IoU
    plus its score when that IoU exceeds ``iou`` and (with ``label``) its label equals ``label``,
    else the sample scores 0 (a degenerate map). Both terms carry gradients (the IoU through the
    predicted box). Outputs: torchvision's list of per-image dicts, or DETR-style ``logits`` and
    ``pred_boxes`` (see :func:`detections` for how a query is read). ``output`` picks the detections
    from a larger output (a key, an index or a callable).

    :meth:`bind` freezes nothing: the match is made again on every output, perturbed ones included,
    as pytorch-grad-cam does; a ``(B, 4)`` box is taken at the bound samples.
    """

    def __init__(self, box: Any, label: int | None = None, iou: float = 0.5, output: OutputSelector = None):
        self.box = _check_box(box)
        if label is not None and (isinstance(label, bool) or not isinstance(label, (int, np.integer))):
            raise TypeError(f"Detection label must be an int or None, got {label!r}")
        if not 0 <= float(iou) < 1:
            raise ValueError(f"Detection iou must be in [0, 1), got {iou!r}")
        self.label = None if label is None else int(label)
        self.iou = float(iou)
        self.output = output

    def __repr__(self) -> str:
        box = self.box.tolist()
        label = "" if self.label is None else f", label={self.label}"
        return f"Detection({box}{label})"

    def select(self, output: Any) -> Any:
        if self.output is None:
            return output
        if callable(self.output):
            return self.output(output)
        return output[self.output]

    def bind(self, samples: Samples, output: Any = None) -> Target:
        rows = check_samples(samples)
        if self.box.dim() == 1:
            return self
        bound = copy.copy(self)
        bound.box = take_rows(self.box, rows, "Detection boxes")
        return bound

    def score(self, out: Any, inputs: Tensor) -> Tensor:
        found = detections(out, inputs)
        batch = len(found)
        boxes = self.box.view(-1, 4)
        if boxes.shape[0] not in (1, batch):
            raise ValueError(f"Detection holds {boxes.shape[0]} boxes for a batch of {batch}; give one per sample")
        height, width = inputs.shape[-2:]
        outside = (boxes[:, 2] > width) | (boxes[:, 3] > height)
        if outside.any():
            raise ValueError(f"Detection box {boxes[outside][0].tolist()} reaches outside the {width}x{height} image")
        scores = []
        for b, (pred_boxes, pred_scores, labels) in enumerate(found):
            box = boxes[b if boxes.shape[0] > 1 else 0].to(pred_boxes)
            zero = (pred_boxes.sum() + pred_scores.sum()) * 0  # on the graph, so a miss is a zero gradient
            if pred_boxes.shape[0] == 0:
                scores.append(zero)
                continue
            ious = box_iou(box, pred_boxes)
            best = int(ious.detach().argmax())
            hit = bool(ious[best] > self.iou) and (self.label is None or int(labels[best]) == self.label)
            scores.append(ious[best] + pred_scores[best] if hit else zero)
        return torch.stack(scores)
