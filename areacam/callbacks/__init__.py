"""Explanations during training: watch fixed samples epoch by epoch without changing the training.

- :func:`explain_epoch`: the plain function for a hand-written loop;
- ``ExplainEveryEpoch``: the same as a PyTorch Lightning callback (``pip install 'areacam[lightning]'``;
  imported on first use, so ``areacam.callbacks`` loads without Lightning);
- :class:`EpochMaps`: what both keep, drawn by :func:`areacam.across_epochs_figure`.
"""

from __future__ import annotations

from typing import Any

from areacam.callbacks.watch import EpochMaps, explain_epoch, log_explanation, untouched

__all__ = ["EpochMaps", "ExplainEveryEpoch", "explain_epoch", "log_explanation", "untouched"]


def __getattr__(name: str) -> Any:
    if name == "ExplainEveryEpoch":
        from areacam.callbacks.lightning import ExplainEveryEpoch

        return ExplainEveryEpoch
    raise AttributeError(f"module 'areacam.callbacks' has no attribute {name!r}")
