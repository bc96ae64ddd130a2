"""Targets whose choice comes from each sample's own data: ``class:label``, ``segment:label``, ``area:mask``.

:func:`parse_run_target` turns a SPEC into either a fixed :class:`~areacam.targets.Target` or a
:class:`SampleSpec`, which builds the batch's target from its labels and masks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..targets import Area, Class, Target, check_samples
from .spec import SPEC_HELP, SpecError, parse_target

__all__ = ["RUN_SPEC_HELP", "SampleSegment", "SampleSpec", "parse_run_target"]

RUN_SPEC_HELP = (
    SPEC_HELP + " | per sample: class:label | segment:label | area:mask[:CH] | area:mask:label "
    "(label = the sample's class; mask = its mask, pixels > 0)"
)


def _dense(out: Tensor, name: str) -> Tensor:
    """An image model's dense output as ``(B, C, H, W)`` (a ``(B, H, W)`` output is one channel)."""
    if out.dim() == 3:
        return out.unsqueeze(1)
    if out.dim() != 4:
        raise ValueError(f"{name} needs a dense (B, C, H, W) output, got shape {tuple(out.shape)}")
    return out


class SampleSegment(Target):
    """Seg-Grad-CAM of each sample's own class: ``sum(logits[b, classes[b]] * pixels[b])``.

    ``pixels`` ``(B, H, W)``: the region; ``None``: the pixels predicted as ``classes[b]`` (argmax over
    channels; for one channel, class 0 and logit > 0). ``classes`` may be one int for a batch of copies
    of one sample (what :meth:`bind` gives perturbation methods).
    """

    def __init__(self, classes: Tensor | int, pixels: Tensor | None = None, output: Any = None):
        self.classes = classes if isinstance(classes, int) else torch.as_tensor(classes, dtype=torch.int64)
        self.pixels = pixels
        self.output = output

    def __repr__(self) -> str:
        return "Segment(own class)" if self.pixels is None else "Area(own mask, own class)"

    def _classes(self, batch: int, device: torch.device) -> Tensor:
        if isinstance(self.classes, int):
            return torch.full((batch,), self.classes, dtype=torch.int64, device=device)
        if self.classes.shape != (batch,):
            raise ValueError(f"{self!r} holds {self.classes.numel()} classes for a batch of {batch}")
        return self.classes.to(device)

    def _predicted(self, out: Tensor, classes: Tensor) -> Tensor:
        if out.shape[1] == 1:
            return (out.detach()[:, 0] > 0).to(out.dtype)
        return (out.detach().argmax(dim=1) == classes[:, None, None]).to(out.dtype)

    def score(self, out: Tensor, inputs: Tensor) -> Tensor:
        out = _dense(out, "segment:label")
        batch, channels, height, width = out.shape
        classes = self._classes(batch, out.device)
        bad = classes[(classes < 0) | (classes >= channels)]
        if channels == 1:
            bad = classes[classes != 0]
        if bad.numel():
            raise IndexError(f"sample class {int(bad[0])} is out of range for an output of {channels} channels")
        logits = out.gather(1, classes.view(batch, 1, 1, 1).expand(batch, 1, height, width))[:, 0]
        if self.pixels is None:
            pixels = self._predicted(out, classes)
        else:
            pixels = self.pixels.to(device=out.device, dtype=out.dtype)
            if pixels.shape[-2:] != (height, width):
                raise ValueError(
                    f"the sample masks are {tuple(pixels.shape[-2:])}, the output {(height, width)}: "
                    "area:mask needs masks at the output's size"
                )
        return (logits * pixels).flatten(1).sum(1)

    def bind(self, samples: Any, output: Any = None) -> Target:
        samples = check_samples(samples)
        classes = self.classes if isinstance(self.classes, int) else self.classes[samples]
        classes = int(classes) if isinstance(classes, int) or classes.dim() == 0 else classes
        pixels = None if self.pixels is None else self.pixels[samples]
        if pixels is None and output is not None:
            out = _dense(self.select(output), "segment:label")
            pixels = self._predicted(out, self._classes(out.shape[0], out.device))[samples]
        return SampleSegment(classes, pixels, output=self.output)


@dataclass(frozen=True)
class SampleSpec:
    """A target SPEC that reads each sample's label or mask; ``build(labels, masks)`` gives the target."""

    spec: str
    needs: str  # "label" or "mask" or "label+mask"
    build: Callable[[Tensor, Tensor | None], Target]


def parse_run_target(spec: str) -> Target | SampleSpec:
    """A SPEC of ``areacam explain`` or one of the per-sample SPECs of :data:`RUN_SPEC_HELP`."""
    text = spec.strip() if isinstance(spec, str) else spec
    if text == "class:label":
        return SampleSpec(spec, "label", lambda labels, masks: Class(labels.tolist()))
    if text == "segment:label":
        return SampleSpec(spec, "label", lambda labels, masks: SampleSegment(labels))
    if isinstance(text, str) and text.startswith("area:mask"):
        rest = text[len("area:mask"):]
        if rest == "":
            return SampleSpec(spec, "mask", lambda labels, masks: Area(mask=(masks > 0).float()))
        if rest == ":label":
            return SampleSpec(spec, "label+mask", lambda labels, masks: SampleSegment(labels, (masks > 0).float()))
        try:
            channel = int(rest[1:]) if rest.startswith(":") else None
        except ValueError:
            channel = None
        if channel is None:
            raise SpecError(f"bad target {spec!r}: expected area:mask, area:mask:CH or area:mask:label")
        return SampleSpec(spec, "mask", lambda labels, masks: Area(mask=(masks > 0).float(), channel=channel))
    try:
        return parse_target(spec)
    except SpecError as err:
        if "unknown target kind" in str(err) or "label" in str(spec) or "mask" in str(spec):
            raise SpecError(f"bad target {spec!r}; expected one of: {RUN_SPEC_HELP}") from None
        raise
