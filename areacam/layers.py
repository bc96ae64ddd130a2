"""Finding a layer by name and capturing its output during one forward pass."""

from __future__ import annotations

import difflib

import torch
from torch import Tensor, nn

__all__ = ["LayerCapture", "layer_name", "resolve_layer"]


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    """Return the submodule ``layer`` (a module of ``model`` or its dotted name)."""
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a module of the model")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module or a dotted name, got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer in modules:
        return modules[layer]
    names = [name for name in modules if name]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = close or [name for name in names if "." not in name][:8]
    raise ValueError(f"no layer named {layer!r} in {type(model).__name__}; closest valid names: {hint}")


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """Dotted name of ``layer`` inside ``model`` (``""`` for the model itself)."""
    for name, module in model.named_modules():
        if module is layer:
            return name
    return type(layer).__name__


class LayerCapture:
    """Forward hook that captures a layer's output as a fresh graph input.

    Inside ``with LayerCapture(model, layer)`` the captured ``activation`` is a leaf that requires
    grad, and the model continues from a clone of it, so in-place ops after the layer
    (``nn.ReLU(inplace=True)``) never touch the captured tensor. Run the forward pass under
    ``torch.no_grad()``: autograd switches on at the layer, so no graph is built (and nothing is
    backpropagated) below it. Hooks come off in ``remove()`` (safe to call twice) and on leaving
    the ``with`` block, also when the model raises.
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str):
        self.module = resolve_layer(model, layer)
        self.name = layer_name(model, self.module)
        self.activation: Tensor | None = None
        self.calls = 0
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def __enter__(self) -> LayerCapture:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove the hook; safe to call more than once."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> Tensor:
        self.calls += 1
        if self.calls > 1:
            raise ValueError(
                f"layer {self.name!r} ran more than once in one forward pass; pick a module that runs "
                "once (e.g. a stage or block output, not a shared activation)"
            )
        if not isinstance(output, Tensor):
            raise TypeError(f"layer {self.name!r} returned a {type(output).__name__}, not a tensor")
        torch.set_grad_enabled(True)
        self.activation = output.detach().requires_grad_(True)
        return self.activation.clone()
