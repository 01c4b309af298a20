"""NFR-08: declared runtime dependencies are exactly the third-party modules the code imports."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

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


def test_an_exported_default_cannot_be_assigned_to_no_effect() -> None:
    """Issue 12: `kitty_orphan_sweep.SPAWN_TIMEOUT_S = 60` used to be accepted and ignored (the
    package reads its own module). Every exported constant now refuses, naming the argument
    that tunes it (or saying it is fixed); the value is unchanged."""
    import kitty_orphan_sweep as kos

    constants = [n for n in kos.__all__ if n.isupper()]
    assert constants, "no exported constants?"
    for name in constants:
        before = getattr(kos, name)
        with pytest.raises(AttributeError, match=f"{name} is a read-only default"):
            setattr(kos, name, 123)
        assert getattr(kos, name) == before
    with pytest.raises(AttributeError, match=r"ensure_daemon\(\.\.\., spawn_timeout=\.\.\.\)"):
        kos.SPAWN_TIMEOUT_S = 60  # type: ignore[misc]
    # Anything else on the module stays assignable (tests monkeypatch functions).
    original = kos.scan
    kos.scan = original
