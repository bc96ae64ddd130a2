"""Type-check ``areacam/`` and ``models/`` with mypy (settings: ``[tool.mypy]`` in pyproject.toml).

The repository's ``models/`` folder installs as ``areacam.models`` (setuptools ``package-dir``), a
mapping mypy cannot follow from the file layout, so its files are handed to mypy under that module
name. Usage: ``python scripts/typecheck.py`` from anywhere; exit status 1 on any error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parents[1]


def model_sources() -> list[BuildSource]:
    """``models/**.py`` under the names they import as: ``models/vae.py`` -> ``areacam.models.vae``."""
    sources = []
    for path in sorted((ROOT / "models").rglob("*.py")):
        parts = ["areacam", "models", *path.relative_to(ROOT / "models").with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        sources.append(BuildSource(str(path.relative_to(ROOT)), ".".join(parts)))
    return sources


def main() -> int:
    os.chdir(ROOT)  # pyproject.toml's [tool.mypy] and the relative paths
    sources, options = process_options(["areacam"])
    try:
        messages = build.build(sources + model_sources(), options).errors
    except CompileError as err:
        messages = err.messages
    for message in messages:
        print(message)
    errors = sum(": error:" in message for message in messages)
    checked = len({s.path for s in sources}) + len(model_sources())
    print(f"mypy: {errors} errors in {checked} files" if errors else f"mypy: no issues in {checked} files")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
