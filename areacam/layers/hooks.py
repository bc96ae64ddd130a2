"""Hook handles that come off together (the one hook-lifetime helper of areacam), and the exception that ends a
forward pass from a hook."""

from __future__ import annotations

import torch

__all__ = ["Hooks", "StopForward"]


class StopForward(Exception):
    """Raised by a forward hook to end the forward pass once the module it watches ran."""


class Hooks:
    """Hook handles that come off together: on ``remove()`` (safe twice) and on leaving ``with``.

    ``with Hooks() as hooks: hooks.add(module.register_forward_hook(fn))`` -- the hooks are removed
    when the block ends, also when the model raises.
    """

    def __init__(self) -> None:
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def add(self, handle: torch.utils.hooks.RemovableHandle) -> None:
        self._handles.append(handle)

    def __len__(self) -> int:
        return len(self._handles)

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook; safe to call more than once."""
        while self._handles:
            self._handles.pop().remove()
