"""Error messages on one line: what a warning, a log line or the command line prints of an exception."""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(err: BaseException | str, limit: int = 400) -> str:
    """``err``'s message with its whitespace collapsed, cut to ``limit`` characters.

    A ``KeyError`` shows its key's message, not its ``repr`` (``str(KeyError("x"))`` quotes it).
    """
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    else:
        text = str(err)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
