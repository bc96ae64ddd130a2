"""Model state during an explanation call: eval mode, gradients on, every flag restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["explaining", "model_device_dtype"]


@contextmanager
def explaining(model: nn.Module) -> Iterator[None]:
    """Run ``model`` in eval mode with gradients enabled; restore every module's flag afterwards.

    Each module's own ``training`` flag is saved and put back (a model in train mode with one
    frozen BatchNorm stays that way), also when the body raises. Gradients are on even inside the
    caller's ``torch.no_grad()`` or ``torch.inference_mode()``.
    """
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def model_device_dtype(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of the model's first parameter or buffer (``None`` if it has none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return None, None
