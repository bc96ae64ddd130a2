"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Every file areacam writes goes through :func:`atomic_write` (bytes or text) or :func:`atomic_save`
(anything a callback writes to a path: a figure, a PNG, an array): the content goes to a temporary
file in the same folder, which is renamed over the target; the temporary file is removed if writing
fails. ``durable=True`` also fsyncs the file and its folder, for stores a killed process resumes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_save", "atomic_write", "fsync_path"]


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's (or a folder's) contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_save(path: str | os.PathLike, write: Callable[[Path], object], durable: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path`` (same suffix), then rename it over ``path``.

    The folder is created if needed. The file gets the usual ``0o644`` permissions (``mkstemp`` makes it
    private). With ``durable``, the file is fsynced before and the folder after the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if durable:
        fsync_path(path.parent)
    return path


def atomic_write(path: str | os.PathLike, data: bytes | str, durable: bool = False) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically (see :func:`atomic_save`)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_save(path, lambda tmp: tmp.write_bytes(payload), durable=durable)
