"""Progress bars: tqdm where it is installed and wanted, a silent stand-in otherwise.

Every bar of the library and the application comes from :func:`progress_bar`, so tqdm stays optional
(it comes with the ``demo`` extra): without it, a bar is silent and nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["progress_bar", "shown"]


class _Silent:
    """The part of tqdm's interface the library uses, doing nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def refresh(self) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        pass


def shown(progress: bool | None, steps: int, least: int = 20) -> bool:
    """Whether a bar of ``steps`` steps is shown: ``progress`` when given, else only from ``least`` steps."""
    return steps >= least if progress is None else bool(progress)


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool | None = None, **kwargs: Any) -> Iterator[Any]:
    """A tqdm bar of ``total`` steps, closed on exit; ``enabled=None`` shows it only on a terminal.

    Without tqdm installed (it comes with the ``demo`` extra) the bar is silent.
    """
    if enabled is False:
        yield _Silent()
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        yield _Silent()
        return
    bar = tqdm(total=total, desc=desc, disable=None if enabled is None else not enabled, dynamic_ncols=True, **kwargs)
    try:
        yield bar
    finally:
        bar.close()
