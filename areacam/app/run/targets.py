"""Targets whose choice comes from each sample's own data: ``class:label``, ``segment:label``, ``area:mask``,
``fp:CLS`` and ``fn:CLS`` (each sample's mask as the truth).

:func:`parse_run_target` turns a SPEC into either a fixed :class:`~areacam.Target` or a
:class:`SampleSpec`, which builds the batch's target from its labels and masks: the library's own
targets with per-sample arguments (``Class([...])``, ``Segment([...])``, ``Area(mask=(B, H, W),
channel=[...])``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from areacam.app.spec import NO_TRUTH_YET, SPEC_HELP, SpecError, needs_truth, parse_target
from areacam.targets import Area, Class, Segment, Target

__all__ = ["RUN_SPEC_HELP", "SampleSpec", "parse_run_target"]

RUN_SPEC_HELP = (
    SPEC_HELP + " | per sample: class:label | segment:label | area:mask[:CH] | area:mask:label "
    "| fp:CLS | fn:CLS (label = the sample's class; mask = its mask, pixels > 0; fp/fn: its mask as labels)"
)


@dataclass(frozen=True)
class SampleSpec:
    """A target SPEC that reads each sample's label or mask; ``build(labels, masks)`` gives the target."""

    spec: str
    needs: str  # "label" or "mask" or "label+mask"
    build: Callable[[Tensor, Tensor | None], Target]


def parse_run_target(spec: str, dims: int = 2) -> Target | SampleSpec:
    """A SPEC of ``areacam explain`` or one of the per-sample SPECs of :data:`RUN_SPEC_HELP`; ``dims`` the
    samples' spatial dims (3 for NIfTI volumes: a box has 6 ints, a pixel 3)."""
    text = spec.strip() if isinstance(spec, str) else spec
    if text == "class:label":
        return SampleSpec(spec, "label", lambda labels, masks: Class(labels.tolist()))
    if text == "segment:label":
        return SampleSpec(spec, "label", lambda labels, masks: Segment(labels.tolist()))
    if isinstance(text, str) and text.startswith("area:mask"):
        rest = text[len("area:mask") :]
        if rest == "":
            return SampleSpec(spec, "mask", lambda labels, masks: Area(mask=_region(masks, spec)))
        if rest == ":label":
            return SampleSpec(
                spec, "label+mask", lambda labels, masks: Area(mask=_region(masks, spec), channel=labels.tolist())
            )
        try:
            channel = int(rest[1:]) if rest.startswith(":") else None
        except ValueError:
            channel = None
        if channel is None:
            raise SpecError(f"bad target {spec!r}: expected area:mask, area:mask:CH or area:mask:label")
        return SampleSpec(spec, "mask", lambda labels, masks: Area(mask=_region(masks, spec), channel=channel))
    if isinstance(text, str) and needs_truth([text]):
        parse_target(text, truth=NO_TRUTH_YET, dims=dims)  # the SPEC's own checks, before any sample is read
        return SampleSpec(spec, "mask", lambda labels, masks: parse_target(text, truth=_truth(masks, spec), dims=dims))
    try:
        return parse_target(spec, dims=dims)
    except SpecError as err:
        if "unknown target kind" in str(err) or "label" in str(spec) or "mask" in str(spec):
            raise SpecError(f"bad target {spec!r}; expected one of: {RUN_SPEC_HELP}") from None
        raise


def _truth(masks: Tensor | None, spec: str) -> Tensor:
    """``(B, *spatial)`` int64: each sample's mask read as class labels."""
    if masks is None:
        raise SpecError(f"target {spec!r} compares the prediction with each sample's mask, but the dataset gave none")
    return masks.long()


def _region(masks: Tensor | None, spec: str) -> Tensor:
    """``(B, *spatial)`` float: each sample's mask pixels > 0."""
    if masks is None:
        raise SpecError(f"target {spec!r} reads each sample's mask, but the dataset gave none")
    return (masks > 0).float()
