"""Shared fixtures for the live-subprocess matrices.

Helper modules beside this file (`_oauth_server.py`, `_procs.py`, ...) are importable from tests
because this directory is put on sys.path here (pytest runs with --import-mode=importlib).
The session fixture at the bottom fails the run if a test leaves a child process behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(autouse=True, scope="session")
def _no_leaked_children() -> Iterator[None]:
    """Every process a test spawns must be reaped by the end of the session."""
    yield
    me = psutil.Process(os.getpid())
    leaked = [p for p in me.children(recursive=True) if p.is_running()]
    for proc in leaked:
        proc.kill()
    psutil.wait_procs(leaked, timeout=5)
    names = [f"{p.pid}:{' '.join(p.cmdline()[:4]) if p.is_running() else '?'}" for p in leaked]
    assert not leaked, f"integration tests leaked child processes: {names}"


@pytest.fixture
def kitty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private KITTY_HOME for one test (0700, like the real one)."""
    home = tmp_path / "kitty-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("KITTY_HOME", str(home))
    return home
