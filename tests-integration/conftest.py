"""Shared fixtures for the live-subprocess matrices.

Helper modules beside this file (`_harness.py`, `_daemons.py`, `_auth_fixtures.py`, ...) are
importable from tests because this directory is put on sys.path here (pytest runs with
--import-mode=importlib).
The session fixture at the bottom fails the run if a test leaves a process or a listener behind.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _auth_fixtures import OAuthServer
    from _harness import Procs

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(autouse=True, scope="session")
def _no_leaked_children(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every process a test spawns must be reaped by the end of the session, and no listener it
    opened may be left in the suite's port block (SPEC §6): children, daemons rooted in the
    session's temp dirs (re-parented away from us when the worker that spawned them exited) and
    new listeners in 20600-20999 all fail the run, named; the processes are stopped first."""
    from _harness import TEST_PORTS, find_leaks, listening_pids, stop_pids

    base = tmp_path_factory.getbasetemp()
    listeners_before = listening_pids(TEST_PORTS)
    yield
    leaks = find_leaks(base, listeners_before)
    stop_pids(leaks.processes)
    assert not leaks.descriptions, "integration tests leaked:\n  " + "\n  ".join(leaks.descriptions)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """The processes one test starts (`_harness.Procs`), all reaped at its teardown."""
    from _harness import Procs

    spawned = Procs(tmp_path)
    try:
        yield spawned
    finally:
        spawned.close()


@pytest.fixture
def kitty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private KITTY_HOME for one test (0700, like the real one)."""
    home = tmp_path / "kitty-home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("KITTY_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def _oauth_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OAuthServer]:
    """One real Authlib OAuth server subprocess per test module that asks for `oauth`."""
    from _auth_fixtures import running_server

    with running_server(tmp_path_factory.mktemp(f"oauth-{request.module.__name__}")) as server:
        yield server


@pytest.fixture
def oauth(_oauth_server: OAuthServer) -> OAuthServer:
    """The module's OAuth server with counters, faults, tokens and logs reset for this test."""
    _oauth_server.reset()
    return _oauth_server
