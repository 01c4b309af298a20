"""process_start_time agrees with psutil (LCK-23); liveness; pid existence; boot id.

These are the only implementations in kitty (issue 12): kitty-daemon-identity re-exports them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from kitty_filelock import (
    START_TIME_TOLERANCE_S,
    _proctime,
    boot_id,
    process_alive_since,
    process_start_time,
)
from kitty_filelock._proctime import pid_exists

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


@pytest.mark.parametrize("bad", [True, "12", 1.5, None.__class__])
def test_a_pid_that_is_not_an_int_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="pid must be an int"):
        process_start_time(bad)  # type: ignore[arg-type]  # deliberately bad


@pytest.mark.parametrize(
    "pid",
    [-1, 0, -(2**40), 2**31, 2**32 + 1, 10**400],
    ids=["-1", "0", "-2^40", "2^31", "2^32+1", "10^400"],
)
def test_pids_no_process_can_have_are_unknown_without_asking_the_os(
    pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state record or lock record may name any int: never a raise, never a truncated ask
    (ctypes would turn 2**32 + 1 into pid 1 on macOS). -1 raised ValueError before issue 12."""
    asked: list[int] = []

    def reader(p: int) -> float:
        asked.append(p)
        return 1.0

    for name in ("_linux_start_time", "_darwin_start_time", "_windows_start_time"):
        monkeypatch.setattr(_proctime, name, reader)
    assert process_start_time(pid) is None
    assert not process_alive_since(pid, 1.0)
    assert asked == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_without_proc_everything_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_proctime, "_PROC", str(tmp_path / "no-proc"))
    assert process_start_time() is None
    assert not process_alive_since(os.getpid(), psutil.Process().create_time())
    assert boot_id() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize(
    ("stat_line", "btime"),
    [
        (b"42 (x) S" + b" 0" * 18, b"btime 1000\n"),  # field 22 missing
        (b"42 (x) S" + b" 0" * 16 + b" notanumber 0", b"btime 1000\n"),
        (b"42 no parenthesis", b"btime 1000\n"),
        (b"42 (x) S" + b" 0" * 17 + b" 100 0", b"cpu 1 2 3\n"),  # no btime
        (b"42 (x) S" + b" 0" * 17 + b" 100 0", b"btime many\n"),
    ],
    ids=["short", "not-a-number", "no-comm", "no-btime", "bad-btime"],
)
def test_a_malformed_proc_reads_as_unknown(
    stat_line: bytes, btime: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_bytes(stat_line)
    (tmp_path / "stat").write_bytes(btime)
    monkeypatch.setattr(_proctime, "_PROC", str(tmp_path))
    assert process_start_time(42) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_hostile_command_name_cannot_shift_the_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = os.sysconf("SC_CLK_TCK") * 5
    comm = b"a) b ) 9 9 9"  # the kernel shows it as (a) b ) 9 9 9)
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_bytes(
        b"42 (" + comm + b") S" + b" 0" * 18 + f" {ticks} 0".encode()
    )
    (tmp_path / "stat").write_bytes(b"cpu 0\nbtime 1000\n")
    monkeypatch.setattr(_proctime, "_PROC", str(tmp_path))
    assert process_start_time(42) == 1005.0


@pytest.mark.skipif(not SUPPORTED, reason="no start-time source on this platform")
def test_alive_since_is_the_start_time_within_the_tolerance() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        started = process_start_time(child.pid)
        assert started is not None
        assert process_alive_since(child.pid, started)
        assert process_alive_since(child.pid, started + START_TIME_TOLERANCE_S)
        # A reused pid (a younger process) is not "alive since".
        assert not process_alive_since(child.pid, started + START_TIME_TOLERANCE_S + 0.01)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    assert not process_alive_since(child.pid, started)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies via /proc")
def test_a_zombie_is_not_alive() -> None:
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


def test_the_tolerance_is_one_second() -> None:
    assert START_TIME_TOLERANCE_S == 1.0


def test_pid_exists() -> None:
    assert pid_exists(os.getpid())
    assert not pid_exists(0)
    assert not pid_exists(-3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux boot_id")
def test_boot_id_is_the_kernel_boot_id() -> None:
    with open("/proc/sys/kernel/random/boot_id") as fh:
        assert boot_id() == fh.read().strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize(
    ("content", "expected"), [(b"abc-123\n", "abc-123"), (b"\n", None), (b"\xff", None)]
)
def test_boot_id_through_the_proc_seam(
    content: bytes, expected: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sys" / "kernel" / "random").mkdir(parents=True)
    (tmp_path / "sys" / "kernel" / "random" / "boot_id").write_bytes(content)
    monkeypatch.setattr(_proctime, "_PROC", str(tmp_path))
    assert boot_id() == expected
