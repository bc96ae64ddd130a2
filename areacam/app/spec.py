"""Parsing the command line's target SPECs into targets, and its method names into the registered methods
(:mod:`areacam.methods.registry`).

SPEC grammar (one target per SPEC)::

    class[:INDEX]                      Class(INDEX); no INDEX: each image's top class
    area:TOP,LEFT,BOTTOM,RIGHT[:CH]    Area(box=...), bottom/right exclusive; CH: one channel
    pixel:Y,X[:CH]                     Pixel(Y, X)
    segment:CLS                        Segment(CLS)
    latent:K                           Latent(K): mu[:, K] of a (recon, mu, logvar) output
    recon-error[:TOP,LEFT,BOTTOM,RIGHT] ReconstructionError(box=...); no box: the whole image
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from areacam._util.checks import check_box
from areacam._util.errors import one_line
from areacam.layers.find import resolve_layer
from areacam.methods import registry
from areacam.methods.registry import Method
from areacam.targets import Area, Class, Latent, Pixel, ReconstructionError, Segment, Target

__all__ = ["SPEC_HELP", "SpecError", "get_method", "make_explainer", "method_layer", "parse_target", "parse_targets"]

SPEC_HELP = (
    "class[:INDEX] | area:TOP,LEFT,BOTTOM,RIGHT[:CH] | pixel:Y,X[:CH] | segment:CLS | latent:K | "
    "recon-error[:TOP,LEFT,BOTTOM,RIGHT]"
)


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


def _box(text: str, spec: str) -> tuple[int, ...]:
    try:
        return check_box(_ints(text, 4, "the box TOP,LEFT,BOTTOM,RIGHT", spec))
    except ValueError as error:  # the targets' own box check, reworded for the command line
        if isinstance(error, SpecError):
            raise
        raise SpecError(f"bad target {spec!r}: {error}") from None


def parse_target(spec: str) -> Target:
    """Turn one SPEC string into a :class:`~areacam.targets.Target` (``SpecError`` if malformed)."""
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
            form = "area:TOP,LEFT,BOTTOM,RIGHT[:CH]" if kind == "area" else "pixel:Y,X[:CH]"
            raise SpecError(f"bad target {spec!r}: expected {form}")
        channel = _int(args[1], "CH", spec) if len(args) == 2 else None
        if kind == "area":
            return Area(box=_box(args[0], spec), channel=channel)
        y, x = _ints(args[0], 2, "Y,X", spec)
        if min(y, x) < 0:
            raise SpecError(f"bad target {spec!r}: pixel coordinates must be >= 0")
        return Pixel(y, x, channel=channel)
    if kind in ("segment", "latent"):
        if len(args) != 1:
            raise SpecError(f"bad target {spec!r}: expected {kind}:{'CLS' if kind == 'segment' else 'K'}")
        value = _int(args[0], "CLS" if kind == "segment" else "K", spec)
        if value < 0:
            raise SpecError(f"bad target {spec!r}: the index must be >= 0")
        return Segment(value) if kind == "segment" else Latent(value)
    if kind in ("recon-error", "recon_error", "reconstruction-error"):
        if len(args) > 1:
            raise SpecError(f"bad target {spec!r}: expected recon-error or recon-error:TOP,LEFT,BOTTOM,RIGHT")
        return ReconstructionError(box=_box(args[0], spec) if args else None)
    raise SpecError(f"unknown target kind {kind!r} in {spec!r}; expected one of: {SPEC_HELP}")


def parse_targets(specs: list[str]) -> list[Target]:
    """Parse every SPEC (all are checked before anything runs)."""
    if not specs:
        raise SpecError(f"no --target given; expected one or more of: {SPEC_HELP}")
    return [parse_target(spec) for spec in specs]


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
