"""Parsing the command line's target SPECs into targets, and its method names into the registered methods
(:mod:`areacam.methods.registry`).

SPEC grammar (one target per SPEC)::

    class[:INDEX]                      Class(INDEX); no INDEX: each image's top class
    area:TOP,LEFT,BOTTOM,RIGHT[:CH]    Area(box=...), bottom/right exclusive; CH: one channel
    pixel:Y,X[:CH]                     Pixel(Y, X)
    segment:CLS                        Segment(CLS)
    latent:K                           Latent(K): mu[:, K] of a (recon, mu, logvar) output
    recon-error[:TOP,LEFT,BOTTOM,RIGHT] ReconstructionError(box=...); no box: the whole image
    detection:X1,Y1,X2,Y2[:LABEL]      Detection(box=...): the detector's best match of the box (pixels)
    fp:CLS                             FalsePositive(CLS, truth): pixels painted CLS whose truth is not CLS
    fn:CLS                             FalseNegative(CLS, truth): pixels of CLS in the truth painted otherwise

``fp`` and ``fn`` need the truth: integer label images (``--mask``), passed as ``truth``.

For volumes (``dims=3``: NIfTI inputs) a box and a pixel have one coordinate per axis ``(Z, Y, X)``, the
volume's stored axes ``(i, j, k)``::

    area:Z0,Y0,X0,Z1,Y1,X1[:CH]        Area(box=...), stops exclusive
    pixel:Z,Y,X[:CH]                   Pixel(Z, Y, X)
    recon-error[:Z0,Y0,X0,Z1,Y1,X1]

and ``detection`` (2-D boxes of a detector) is refused.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from areacam._util.checks import check_box
from areacam._util.errors import one_line
from areacam.layers.find import resolve_layer
from areacam.methods import registry
from areacam.methods.registry import Method
from areacam.targets import (
    Area,
    Class,
    Detection,
    FalseNegative,
    FalsePositive,
    Latent,
    Pixel,
    ReconstructionError,
    Segment,
    Target,
)

__all__ = [
    "NO_TRUTH_YET",
    "SPEC_HELP",
    "SpecError",
    "get_method",
    "make_explainer",
    "method_layer",
    "needs_truth",
    "parse_target",
    "parse_targets",
]

SPEC_HELP = (
    "class[:INDEX] | area:TOP,LEFT,BOTTOM,RIGHT[:CH] | pixel:Y,X[:CH] | segment:CLS | latent:K | "
    "recon-error[:TOP,LEFT,BOTTOM,RIGHT] | detection:X1,Y1,X2,Y2[:LABEL] | fp:CLS | fn:CLS; "
    "volumes (NIfTI): area:Z0,Y0,X0,Z1,Y1,X1[:CH] | pixel:Z,Y,X[:CH] | recon-error[:Z0,Y0,X0,Z1,Y1,X1]"
)

#: The coordinates of a box and of a pixel, by number of spatial dims.
_BOX = {2: "TOP,LEFT,BOTTOM,RIGHT", 3: "Z0,Y0,X0,Z1,Y1,X1"}
_PIXEL = {2: "Y,X", 3: "Z,Y,X"}


#: Stands for the truth while ``fp:`` / ``fn:`` SPECs are checked, before the label images are read.
NO_TRUTH_YET = torch.zeros(1, 1, 1, dtype=torch.long)


class SpecError(ValueError):
    """A SPEC or method name that cannot be parsed; the message is one line."""


def _ints(text: str, count: int, what: str, spec: str) -> list[int]:
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(parts) != count or len(values) != count:
        raise SpecError(f"bad target {spec!r}: {what} must be {count} comma-separated ints, got {text!r}")
    return values


def _int(text: str, what: str, spec: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"bad target {spec!r}: {what} must be an int, got {text!r}") from None


def _box(text: str, spec: str, dims: int = 2) -> tuple[int, ...]:
    try:
        return check_box(_ints(text, 2 * dims, f"the box {_BOX[dims]}", spec))
    except ValueError as error:  # the targets' own box check, reworded for the command line
        if isinstance(error, SpecError):
            raise
        raise SpecError(f"bad target {spec!r}: {error}") from None


def parse_target(spec: str, truth: Tensor | None = None, dims: int = 2) -> Target:
    """Turn one SPEC string into a :class:`~areacam.targets.Target` (``SpecError`` if malformed).

    ``truth`` is the ``(B, H, W)`` (or ``(B, D, H, W)``) integer labels ``fp:CLS`` and ``fn:CLS`` compare the
    prediction with; ``dims`` the input's spatial dims: 2 for images, 3 for volumes.
    """
    if dims not in _BOX:
        raise ValueError(f"dims must be 2 (images) or 3 (volumes), got {dims!r}")
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"empty target spec; expected one of: {SPEC_HELP}")
    kind, _, rest = spec.strip().partition(":")
    kind = kind.lower()
    args = rest.split(":") if rest else []
    if kind == "class":
        if len(args) > 1:
            raise SpecError(f"bad target {spec!r}: expected class or class:INDEX")
        return Class(_int(args[0], "INDEX", spec) if args else None)
    if kind in ("area", "pixel"):
        if not 1 <= len(args) <= 2:
            form = f"area:{_BOX[dims]}[:CH]" if kind == "area" else f"pixel:{_PIXEL[dims]}[:CH]"
            raise SpecError(f"bad target {spec!r}: expected {form}")
        channel = _int(args[1], "CH", spec) if len(args) == 2 else None
        if kind == "area":
            return Area(box=_box(args[0], spec, dims), channel=channel)
        where = _ints(args[0], dims, _PIXEL[dims], spec)
        if min(where) < 0:
            raise SpecError(f"bad target {spec!r}: pixel coordinates must be >= 0")
        return Pixel(*where, channel=channel)
    if kind in ("segment", "latent"):
        if len(args) != 1:
            raise SpecError(f"bad target {spec!r}: expected {kind}:{'CLS' if kind == 'segment' else 'K'}")
        value = _int(args[0], "CLS" if kind == "segment" else "K", spec)
        if value < 0:
            raise SpecError(f"bad target {spec!r}: the index must be >= 0")
        return Segment(value) if kind == "segment" else Latent(value)
    if kind in ("fp", "fn"):
        if len(args) != 1:
            raise SpecError(f"bad target {spec!r}: expected {kind}:CLS")
        cls = _int(args[0], "CLS", spec)
        if cls < 0:
            raise SpecError(f"bad target {spec!r}: the class must be >= 0")
        if truth is None:
            raise SpecError(f"target {spec!r} compares the prediction with the truth: pass --mask label images")
        return (FalsePositive if kind == "fp" else FalseNegative)(cls, truth)
    if kind == "detection" and dims != 2:
        raise SpecError(f"bad target {spec!r}: detection boxes are 2-D (a detector's image boxes), not for volumes")
    if kind == "detection":
        if not 1 <= len(args) <= 2:
            raise SpecError(f"bad target {spec!r}: expected detection:X1,Y1,X2,Y2[:LABEL]")
        x1, y1, x2, y2 = _ints(args[0], 4, "the box X1,Y1,X2,Y2", spec)
        if x2 <= x1 or y2 <= y1 or min(x1, y1) < 0:
            raise SpecError(f"bad target {spec!r}: the box needs 0 <= X1 < X2 and 0 <= Y1 < Y2 (pixels)")
        label = _int(args[1], "LABEL", spec) if len(args) == 2 else None
        return Detection((x1, y1, x2, y2), label=label)
    if kind in ("recon-error", "recon_error", "reconstruction-error"):
        if len(args) > 1:
            raise SpecError(f"bad target {spec!r}: expected recon-error or recon-error:{_BOX[dims]}")
        return ReconstructionError(box=_box(args[0], spec, dims) if args else None)
    raise SpecError(f"unknown target kind {kind!r} in {spec!r}; expected one of: {SPEC_HELP}")


def parse_targets(specs: list[str], truth: Tensor | None = None, dims: int = 2) -> list[Target]:
    """Parse every SPEC (all are checked before anything runs); ``truth`` and ``dims`` as for
    :func:`parse_target`."""
    if not specs:
        raise SpecError(f"no --target given; expected one or more of: {SPEC_HELP}")
    return [parse_target(spec, truth, dims) for spec in specs]


def needs_truth(specs: list[str]) -> bool:
    """Whether any SPEC compares the prediction with the truth (``fp:`` / ``fn:``)."""
    return any(isinstance(s, str) and s.strip().lower().partition(":")[0] in ("fp", "fn") for s in specs)


def get_method(name: str) -> Method:
    """The registered :class:`~areacam.methods.registry.Method` called ``name`` (``SpecError`` listing the
    valid names otherwise)."""
    try:
        return registry.get_method(name)
    except KeyError as err:
        raise SpecError(one_line(err)) from None


def method_layer(method: Method, model: nn.Module, layer: str | None) -> nn.Module | None:
    """Resolve ``--layer`` once for ``method``: the module, or ``None`` for methods without a layer."""
    if not method.needs_layer:
        return None
    if not layer:
        raise SpecError(f"method {method.name!r} needs --layer NAME; list candidates with 'areacam layers --model ...'")
    return resolve_layer(model, layer)


def make_explainer(method: Method, model: nn.Module, layer: nn.Module | None, size: tuple[int, ...]) -> Callable:
    """Build the explainer from the layer :func:`method_layer` resolved and the input's spatial ``size``."""
    return method.build(model, layer, tuple(size))
