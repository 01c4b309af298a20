"""Fixtures for kitty-doctor tests; helpers live in ``_doctorkit``.

Every test gets its own KITTY_HOME and port ranges inside 20400-20599 (the block reserved for
this package's live tests), so a scan never touches the default ranges or another suite's ports.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from _procs import Daemon

SYNC_PORTS = "20400-20450"
DASHBOARD_PORTS = "20450-20550"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_SYNC_PORTS", SYNC_PORTS)
    monkeypatch.setenv("KITTY_DASHBOARD_PORTS", DASHBOARD_PORTS)
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("KITTY_LOGIN_COMMAND", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    path = tmp_path / "home"
    monkeypatch.setenv("KITTY_HOME", str(path))
    return path


@pytest.fixture
def spawn(home: pathlib.Path) -> Iterator[Callable[..., Daemon]]:
    """Start reference daemons (in `home` unless told otherwise); all reaped at teardown."""
    started: list[Daemon] = []

    def _spawn(port: int, **kwargs: Any) -> Daemon:
        kwargs.setdefault("home", home)
        daemon = Daemon(port, **kwargs)
        started.append(daemon)
        return daemon

    try:
        yield _spawn
    finally:
        for daemon in started:
            daemon.close()
