"""The registry of explainers: one registration per method drives the command line's method table, the
method list of the docs (``docs/methods.md``) and the tests that run every method.

A method registers its class where it is defined::

    @register("gradcam", layer=True, summary="Grad-CAM", peer="pytorch_grad_cam.GradCAM")
    class GradCAM(FieldCAM): ...

``build(model, layer, size)`` makes the explainer the command line runs (default: ``cls(model, layer)``
for layer methods, ``cls(model)`` for the others); ``size`` is the input's spatial size, for methods whose
settings depend on it. ``peer`` names the class of a peer library that gives the same numbers (the
reference tests compare the two; the docs' table lists it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

__all__ = ["METHODS", "Method", "get_method", "markdown_table", "register"]

Size = tuple[int, ...]
Builder = Callable[[nn.Module, "nn.Module | None", Size], Any]
C = TypeVar("C", bound=type)


@dataclass(frozen=True)
class Method:
    """A registered explainer: its command-line name, class, whether it reads a layer, and its builder."""

    name: str
    cls: type
    needs_layer: bool
    summary: str
    build: Builder
    aliases: tuple[str, ...] = ()
    peer: str = ""  # e.g. "pytorch_grad_cam.GradCAM": the peer class with the same numbers


#: Every registered method by name, in registration order (import order of :mod:`areacam.methods`).
METHODS: dict[str, Method] = {}


def register(
    name: str,
    *,
    layer: bool,
    summary: str,
    aliases: tuple[str, ...] = (),
    build: Builder | None = None,
    peer: str = "",
) -> Callable[[C], C]:
    """Class decorator: register the explainer class under ``name`` (and ``aliases``)."""

    def decorate(cls: C) -> C:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice ({METHODS[name].cls.__name__}, {cls.__name__})")

        def default(model: nn.Module, module: nn.Module | None, size: Size) -> Any:
            return cls(model, module) if layer else cls(model)

        METHODS[name] = Method(name, cls, layer, summary, build or default, tuple(aliases), peer)
        return cls

    return decorate


def get_method(name: str) -> Method:
    """The method called ``name`` or one of its aliases (case and ``_``/``-`` ignored); ``KeyError`` listing the
    valid names otherwise."""
    key = name.lower().replace("_", "-")
    for method in METHODS.values():
        if key == method.name or key in method.aliases:
            return method
    raise KeyError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")


def markdown_table() -> str:
    """The method list of ``docs/methods.md``: one row per registered method, in registration order."""
    lines = [
        "| `--method` | class | reads a layer | the command line runs | same numbers as |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method in METHODS.values():
        layer = "yes" if method.needs_layer else "no"
        peer = f"`{method.peer}`" if method.peer else "-"
        lines.append(f"| `{method.name}` | `ac.{method.cls.__name__}` | {layer} | {method.summary} | {peer} |")
    return "\n".join(lines)
