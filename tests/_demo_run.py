"""One ``areacam demo --quick`` run shared by the test modules of a session (it trains six models)."""

from __future__ import annotations

import time
from pathlib import Path

_RUN: dict[str, object] = {}


def quick_demo(factory) -> tuple[Path, int, float, str]:
    """``(out, exit status, seconds, stdout)`` of one quick demo run through the command line's main()."""
    if not _RUN:
        import contextlib
        import io

        from areacam.app.cli import main

        out = factory.mktemp("demo") / "demo_out"
        buffer = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(buffer):
            status = main(["demo", "--out", str(out), "--quick", "--no-progress"])
        _RUN.update(out=out, status=status, seconds=time.perf_counter() - start, stdout=buffer.getvalue())
    return _RUN["out"], _RUN["status"], _RUN["seconds"], _RUN["stdout"]  # type: ignore[return-value]
