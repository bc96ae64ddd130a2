"""Finding a layer: by module or dotted name, through ``torch.compile`` and ``DataParallel`` wrappers."""

from __future__ import annotations

import difflib

from torch import nn

from areacam.core.explainer import unwrap_model

__all__ = ["layer_name", "resolve_layer", "unwrap_model"]


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> nn.Module:
    """Return the submodule ``layer`` (a module of ``model`` or its dotted name).

    Names resolve inside compiled and (Distributed)DataParallel wrappers: ``"layer4"`` finds
    ``_orig_mod.layer4`` or ``module.layer4``, and the prefixed names work too.
    """
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ValueError(f"layer {type(layer).__name__} is not a module of the model")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module or a dotted name, got {type(layer).__name__}")
    inner = dict(unwrap_model(model).named_modules())
    if layer in inner:
        return inner[layer]
    outer = dict(model.named_modules())
    if layer in outer:
        return outer[layer]
    names = [name for name in inner if name]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = close or [name for name in names if "." not in name][:8]
    raise ValueError(f"no layer named {layer!r} in {type(model).__name__}; closest valid names: {hint}")


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    """Dotted name of ``layer`` inside ``model`` (without wrapper prefixes; ``""`` for the model)."""
    for name, module in unwrap_model(model).named_modules():
        if module is layer:
            return name
    for name, module in model.named_modules():
        if module is layer:
            return name
    return type(layer).__name__
