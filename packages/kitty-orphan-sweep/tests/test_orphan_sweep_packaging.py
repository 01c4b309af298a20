"""NFR-08: declared runtime dependencies are exactly the third-party modules the code imports."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import requires
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "kitty_orphan_sweep"


def _imported_roots() -> set[str]:
    roots: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots


def test_declared_dependencies_match_third_party_imports() -> None:
    third_party = {
        root.replace("_", "-")
        for root in _imported_roots()
        if root not in sys.stdlib_module_names and root not in {"__future__", "kitty_orphan_sweep"}
    }
    declared = {
        re.split(r"[ <>=!~;\[]", req, maxsplit=1)[0].lower()
        for req in requires("kitty-orphan-sweep") or []
        if "extra ==" not in req
    }
    # An unused runtime dependency is installed into every app for nothing; a missing one breaks
    # a clean install. Loopback HTTP is raw sockets (SWP-03 allows stdlib), so no httpx.
    assert declared == third_party
    assert "httpx" not in declared
