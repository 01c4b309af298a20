"""Fixtures for kitty-daemon-identity tests.

Real-socket tests use ports from 20100-20199 only (other packages' suites use other ranges).
The helper module ``_didkit.py`` beside this file is importable because this directory is put
on sys.path here (pytest runs with --import-mode=importlib).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _didkit  # noqa: E402 - needs the sys.path entry above


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private KITTY_HOME; port-range overrides cleared."""
    h = tmp_path / "home"
    h.mkdir(mode=0o700)
    monkeypatch.setenv("KITTY_HOME", str(h))
    for var in (
        "KITTY_SYNC_PORTS",
        "KITTY_DASHBOARD_PORTS",
        "KITTY_DAEMON_PORT",
        "KITTY_DAEMON_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture
def root(home: Path) -> Path:
    """The resolved daemon root of ``home``."""
    r = (home / "daemon").resolve()
    r.mkdir(mode=0o700)
    return r


@pytest.fixture
def procs() -> Iterator[_didkit.ProcSet]:
    """Spawned processes; every one is killed and reaped at teardown."""
    ps = _didkit.ProcSet()
    try:
        yield ps
    finally:
        ps.reap_all()
