"""Old argument and method names, accepted for one release with a ``DeprecationWarning``."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["deprecated_alias", "renamed"]

F = TypeVar("F", bound=Callable[..., Any])


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """Decorator: keyword ``old=`` still works as ``new=`` (with a warning); both at once is a ``TypeError``."""

    def wrap(fn: F) -> F:
        owner = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"{owner} got both {old}= (the old name) and {new}=; pass only {new}=")
                warnings.warn(
                    f"{owner}: {old}= is deprecated and will be removed in the next release; use {new}=",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


class deprecated_alias:
    """A method alias that warns: ``figure = deprecated_alias("plot")`` in a class body."""

    def __init__(self, new: str):
        self.new = new
        self.name = new

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self

        def method(*args: Any, **kwargs: Any) -> Any:
            warnings.warn(
                f"{type(obj).__name__}.{self.name}() is deprecated and will be removed in the next release; "
                f"use .{self.new}()",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(obj, self.new)(*args, **kwargs)

        return method
