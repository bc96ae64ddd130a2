"""Model state during an explanation call: eval mode, gradients on, every flag restored afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["explaining", "model_device_dtype"]


@contextmanager
def explaining(model: nn.Module, keep_mode: bool = False) -> Iterator[None]:
    """Run ``model`` in eval mode with gradients enabled; restore every module's flag afterwards.

    Each module's own ``training`` flag is saved and put back (a model in train mode with one
    frozen BatchNorm stays that way), also when the body raises. Gradients are on even inside the
    caller's ``torch.no_grad()`` or ``torch.inference_mode()``.

    ``keep_mode=True`` is the one exception (explainers built with ``create_graph=True``, whose
    explanation is part of a training loss): the model runs in the caller's train/eval mode, as the
    training step does. Its buffers (BatchNorm running statistics, ``num_batches_tracked``) are put
    back afterwards, so the explanation's forward pass does not count as a second training step:
    BatchNorm runs with ``momentum=0`` (its running statistics are saved for the backward pass and
    must not be written back in place afterwards), and any other buffer that changed is copied back.
    """
    modes = [(module, module.training) for module in model.modules()]
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()] if keep_mode else []
    norms = [(m, m.momentum) for m in model.modules() if isinstance(m, _BatchNorm)] if keep_mode else []
    try:
        if not keep_mode:
            model.eval()
        for norm, _ in norms:
            norm.momentum = 0.0
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode
        for norm, momentum in norms:
            norm.momentum = momentum
        with torch.no_grad():
            for buffer, value in saved:
                if not torch.equal(buffer, value):
                    buffer.copy_(value)


def model_device_dtype(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of the model's first parameter or buffer (``None`` if it has none)."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return None, None
