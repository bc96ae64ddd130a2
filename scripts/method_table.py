"""Write the registered methods' table into docs/methods.md (between its ``methods-table`` markers).

The table is :func:`areacam.methods.registry.markdown_table`; tests/test_docs.py fails when the page's
copy is stale. Usage: ``python scripts/method_table.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

from areacam.methods.registry import markdown_table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "methods.md"
BLOCK = re.compile(r"(<!-- methods-table:start[^>]*-->\n)(?:.*?\n)?(<!-- methods-table:end -->)", re.S)


def main() -> None:
    text = PAGE.read_text()
    if not BLOCK.search(text):
        raise SystemExit(f"{PAGE}: no <!-- methods-table:start --> ... <!-- methods-table:end --> markers")
    PAGE.write_text(BLOCK.sub(lambda m: m.group(1) + markdown_table() + "\n" + m.group(2), text))
    print(f"wrote the method table into {PAGE}")


if __name__ == "__main__":
    main()
