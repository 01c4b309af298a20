"""Fixtures: an isolated home and port block per test, helper processes, and a leak check.

Real-port tests use 20200-20399 only: sync blocks inside 20200-20295, dashboard blocks inside
20300-20395, handed out round-robin (tests run serially and each one reaps what it started).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _orphan_sweep_helpers import (  # noqa: E402
    PORT_BASE,
    Env,
    ProcessPool,
    processes_with_marker_under,
    reap_marked,
)
from kitty_orphan_sweep._net import connect_probe  # noqa: E402

_BASE = PORT_BASE  # KITTY_SWEEP_TEST_PORT_BASE moves the whole window
TEST_PORTS = range(_BASE, _BASE + 200)
BLOCK = 8
_SYNC_BLOCKS = itertools.cycle(range(_BASE, _BASE + 96, BLOCK))
_DASH_BLOCKS = itertools.cycle(range(_BASE + 100, _BASE + 196, BLOCK))


@pytest.fixture(autouse=True, scope="session")
def _no_leaks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the run if any spawned process or listener outlives the tests."""
    base = tmp_path_factory.getbasetemp()
    yield
    me = psutil.Process(os.getpid())
    children = [p for p in me.children(recursive=True) if p.is_running()]
    marked = processes_with_marker_under(base)
    listening = sorted(connect_probe(TEST_PORTS, 0.2))
    names = [f"{p.pid}" for p in children] + reap_marked(base)
    for proc in children:
        proc.kill()
    psutil.wait_procs(children, timeout=10)
    assert not children, f"tests leaked child processes: {names}"
    assert not marked, f"tests leaked daemons rooted in their temp homes: {names}"
    assert not listening, f"tests leaked listeners on ports {listening}"


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[ProcessPool]:
    procs = ProcessPool(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A private KITTY_HOME plus private sync/dashboard port blocks; reaps daemons it rooted."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    sync_start, dash_start = next(_SYNC_BLOCKS), next(_DASH_BLOCKS)
    sync, dash = range(sync_start, sync_start + BLOCK), range(dash_start, dash_start + BLOCK)
    busy = sorted(connect_probe([*sync, *dash], 0.2))
    assert not busy, f"test ports {busy} are already in use by another process"
    monkeypatch.setenv("KITTY_HOME", str(home))
    monkeypatch.setenv("KITTY_SYNC_PORTS", f"{sync.start}-{sync.stop}")
    monkeypatch.setenv("KITTY_DASHBOARD_PORTS", f"{dash.start}-{dash.stop}")
    try:
        yield Env(home, sync, dash)
    finally:
        reap_marked(tmp_path)
