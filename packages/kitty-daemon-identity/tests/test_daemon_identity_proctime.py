"""process_start_time agrees with psutil (LCK-23 semantics) and the liveness check built on it."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from kitty_daemon_identity import _proctime, process_alive_since, process_start_time


def test_self_agrees_with_psutil() -> None:
    ours = process_start_time()
    assert ours is not None
    assert abs(ours - psutil.Process().create_time()) <= 1.0


def test_child_agrees_with_psutil_and_dead_is_unknown() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        started = process_start_time(child.pid)
        assert started is not None
        assert abs(started - psutil.Process(child.pid).create_time()) <= 1.0
        assert process_alive_since(child.pid, started)
        assert not process_alive_since(child.pid, started + 5.0)  # a reused PID is not "alive"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert process_start_time(child.pid) is None
    assert not process_alive_since(child.pid, started)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies via /proc")
def test_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        started = process_start_time(child.pid)
        assert started is not None
        # Wait for the exit WITHOUT reaping: the child stays a zombie until child.wait().
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
        assert process_start_time(child.pid) is not None
        assert not process_alive_since(child.pid, started)
    finally:
        child.wait(timeout=30)


@pytest.mark.parametrize("pid", [0, -1, True])
def test_invalid_pids_are_unknown(pid: int) -> None:
    assert process_start_time(pid) is None


def test_missing_boot_time_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_proctime, "_linux_boot_time", lambda: None)
    if sys.platform.startswith("linux"):
        assert process_start_time() is None


@pytest.mark.parametrize("pid", [2**31, 2**32 + 1, 10**400], ids=["2^31", "2^32+1", "10^400"])
def test_pids_no_os_can_have_are_unknown_without_asking_the_os(
    pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state record or payload may name any int; ctypes would truncate it to a real PID."""
    asked: list[int] = []

    def reader(p: int) -> float:
        asked.append(p)
        return 1.0

    for name in ("_linux_start_time", "_darwin_start_time", "_windows_start_time"):
        monkeypatch.setattr(_proctime, name, reader)
    assert process_start_time(pid) is None
    assert not process_alive_since(pid, 1.0)
    assert asked == []
