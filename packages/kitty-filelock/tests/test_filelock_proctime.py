"""process_start_time agrees with psutil (LCK-23); pid existence; boot id."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from kitty_filelock import process_start_time
from kitty_filelock._proctime import boot_id, pid_exists

SUPPORTED = sys.platform.startswith("linux") or sys.platform in ("darwin", "win32")


@pytest.mark.skipif(not SUPPORTED, reason="no start-time source on this platform")
def test_own_start_time_matches_psutil() -> None:
    mine = process_start_time()
    assert mine is not None
    assert abs(mine - psutil.Process().create_time()) <= 1.0
    assert process_start_time(os.getpid()) == mine


@pytest.mark.skipif(not SUPPORTED, reason="no start-time source on this platform")
def test_child_start_time_matches_psutil() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        ours = process_start_time(child.pid)
        assert ours is not None
        assert abs(ours - psutil.Process(child.pid).create_time()) <= 1.0
    finally:
        child.kill()
        child.wait(timeout=60)
        assert child.stdin is not None
        child.stdin.close()


def test_missing_process_has_no_start_time() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    assert process_start_time(child.pid) is None
    assert not pid_exists(child.pid)


@pytest.mark.parametrize("bad", [-1, True, "12", 1.5])
def test_bad_pid_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="pid"):
        process_start_time(bad)  # type: ignore[arg-type]  # deliberately bad


def test_pid_exists() -> None:
    assert pid_exists(os.getpid())
    assert not pid_exists(0)
    assert not pid_exists(-3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux boot_id")
def test_boot_id_is_the_kernel_boot_id() -> None:
    with open("/proc/sys/kernel/random/boot_id") as fh:
        assert boot_id() == fh.read().strip()
