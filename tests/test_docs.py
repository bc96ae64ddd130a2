"""The docs stay true to the code: the registry's method table, every method documented, the map of the house."""

from __future__ import annotations

import re
from pathlib import Path

import areacam as ac
from areacam.methods.registry import METHODS, markdown_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_method_table_of_methods_md_is_the_registry_s():
    page = (DOCS / "methods.md").read_text()
    block = re.search(r"<!-- methods-table:start[^>]*-->\n(.*?)\n<!-- methods-table:end -->", page, re.S)
    assert block is not None, "docs/methods.md lost its methods-table markers"
    assert block.group(1) == markdown_table(), "stale method table: run python scripts/method_table.py"


def test_every_registered_method_is_public_and_documented():
    api = (DOCS / "api.md").read_text()
    methods = (DOCS / "methods.md").read_text()
    answers = methods[methods.index("## What each method answers") :]
    for method in METHODS.values():
        name = method.cls.__name__
        assert getattr(ac, name, None) is method.cls, f"{name} is registered but not exported as ac.{name}"
        assert f"::: areacam.{name}\n" in api, f"{name} has no entry in docs/api.md"
        assert f"`{name}(" in answers, f"{name} is missing from the 'What each method answers' table"


def test_the_map_of_the_house_names_every_folder():
    page = (DOCS / "architecture.md").read_text()
    folders = sorted(p.name for p in (ROOT / "areacam").iterdir() if (p / "__init__.py").is_file())
    missing = [name for name in folders if f"`areacam/{name}/`" not in page]
    assert not missing, f"docs/architecture.md does not place {missing}"
    assert "`models/`" in page


def test_paths_named_in_the_docs_exist():
    named = set()
    for page in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        named |= {
            (page.name, m)
            for m in re.findall(r"`((?:areacam|models|scripts|tests)/[\w/.-]+\.(?:py|html))`", page.read_text())
        }
    missing = sorted((page, path) for page, path in named if not (ROOT / path).exists())
    assert not missing, f"docs name files that do not exist: {missing}"


def _resolves(dotted: str) -> bool:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(value, name):
                return False
            value = getattr(value, name)
        return True
    return False


def test_dotted_names_in_the_docs_resolve():
    named = set()
    for page in [*DOCS.glob("*.md"), ROOT / "README.md"]:
        named |= {(page.name, m) for m in re.findall(r"`(areacam(?:\.\w+)+)", page.read_text())}
    missing = sorted((page, name) for page, name in named if not _resolves(name))
    assert not missing, f"docs name modules or attributes that do not exist: {missing}"
