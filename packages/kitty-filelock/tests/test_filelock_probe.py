"""probe (LCK-12, LCK-13, LCK-22) and force_release (LCK-14), against real holder processes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kitty_filelock import (
    LockProbe,
    MachineFileLock,
    force_release,
    lock_holder_pids,
    probe,
    read_lock_record,
)
from kitty_filelock import _force as force_module
from kitty_filelock import _probe as probe_module
from kitty_filelock._probe import f_getlk_holder, proc_locks_holders

if TYPE_CHECKING:
    from conftest import SpawnHolder, TryLockInChild

LINUX = sys.platform.startswith("linux")
POSIX = hasattr(os, "fork")


def stale_record(path: Path, *, age_s: float, pid: int = 999_999) -> None:
    """Write the record of a long-dead holder (no lock held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import datetime as dt

    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    path.write_text(
        json.dumps({"pid": pid, "acquired_at": when.isoformat(), "label": "ghost", "mode": "flock"})
    )


def test_probe_of_a_missing_file_is_unheld_and_creates_nothing(lock_path: Path) -> None:
    result = probe(lock_path)
    assert isinstance(result, LockProbe)
    assert result.held is False
    assert result.holder_pid is None
    assert result.record is None
    assert result.stale_record is False
    assert result.age_s is None
    assert result.max_hold_s is None
    assert not lock_path.exists()
    assert not lock_path.parent.exists()


@pytest.mark.parametrize("mode", ["flock", "fcntl"] if POSIX else ["msvcrt"])
def test_probe_reports_the_true_holder_of_another_process(
    lock_path: Path, spawn_holder: SpawnHolder, mode: str
) -> None:
    holder = spawn_holder(lock_path, mode=mode)
    result = probe(lock_path)
    assert result.held is True
    assert result.holder_pid == holder.pid
    assert result.holder_source == ("proc_locks" if LINUX else "record")
    assert result.record is not None
    assert result.record.pid == holder.pid
    assert result.mode == mode
    assert result.stale_record is False
    assert result.max_hold_s == 5.0  # LCK-22: the advisory budget is visible to the doctor
    assert result.age_s is not None
    holder.release()
    after = probe(lock_path)
    assert after.held is False
    assert after.record is None  # release truncated it


def test_probe_true_holder_differs_from_a_lying_record(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    """The record is diagnostic; the OS says who really holds the lock."""
    holder = spawn_holder(lock_path, backdate_s=10)
    result = probe(lock_path)
    assert result.held is True
    assert result.holder_pid == holder.pid
    assert result.age_s is not None
    assert result.age_s >= 9


@pytest.mark.skipif(not POSIX, reason="SIGKILL")
def test_probe_after_a_crash_reports_a_stale_record(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path)
    holder.kill()
    result = probe(lock_path)
    assert result.held is False
    assert result.stale_record is True
    assert result.record is not None
    assert result.record.pid == holder.pid
    assert result.holder_pid is None
    assert result.holder_source is None


def test_probe_in_the_holding_process_answers_from_the_registry(lock_path: Path) -> None:
    with MachineFileLock(lock_path, mode="fcntl" if POSIX else "msvcrt") as lock:
        for _ in range(3):
            result = probe(lock_path)
            assert result.held is True
            assert result.holder_pid == os.getpid()
            assert result.holder_source == "registry"
            assert result.record == lock.record


def test_many_probes_never_disturb_a_holder(
    lock_path: Path, spawn_holder: SpawnHolder, try_lock_in_child: TryLockInChild
) -> None:
    holder = spawn_holder(lock_path)
    before = lock_path.read_bytes()
    for _ in range(1000):
        assert probe(lock_path).held is True
    assert lock_path.read_bytes() == before  # never written or truncated
    assert try_lock_in_child(lock_path) == "timeout"  # the holder still holds
    holder.release()


def test_probe_falls_back_to_a_shared_try_lock_without_proc_locks(
    lock_path: Path, spawn_holder: SpawnHolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_module, "PROC_LOCKS", str(lock_path.parent / "no-such-table"))
    holder = spawn_holder(lock_path)
    result = probe(lock_path)
    assert result.held is True
    assert result.holder_pid == holder.pid
    assert result.holder_source == "record"
    holder.release()
    assert probe(lock_path).held is False


@pytest.mark.skipif(not POSIX, reason="permissions")
def test_probe_of_an_unreadable_file_is_undetermined(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock_path.parent.mkdir(parents=True)
    lock_path.write_text("")
    monkeypatch.setattr(probe_module, "PROC_LOCKS", str(lock_path.parent / "no-such-table"))
    monkeypatch.setattr(probe_module, "_READ_FLAGS", os.O_RDONLY | os.O_DIRECTORY)
    result = probe(lock_path)  # opening fails (ENOTDIR via O_DIRECTORY): cannot tell
    assert result.held is None
    assert result.holder_source is None
    assert result.stale_record is False


def test_probe_of_an_unstatable_path_is_undetermined(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = probe(blocker / "x.lock")
    assert result.held is None


def test_proc_locks_parsing_table() -> None:
    key = (os.makedev(0xFE, 0x01), 2146559)
    text = "\n".join(
        [
            "1: FLOCK  ADVISORY  WRITE 6377 fe:01:2146559 0 EOF",
            "1: -> FLOCK  ADVISORY  WRITE 7000 fe:01:2146559 0 EOF",  # a blocked waiter
            "2: POSIX  ADVISORY  READ 6400 fe:01:2146559 0 EOF",  # a shared lock (a prober)
            "3: POSIX  ADVISORY  WRITE 6500 fe:01:99 0 EOF",  # another inode
            "4: POSIX  ADVISORY  WRITE 6600 fd:01:2146559 0 EOF",  # another device
            "5: OFDLCK ADVISORY  WRITE -1 fe:01:2146559 0 EOF",  # no pid
            "6: FLOCK  ADVISORY  WRITE x fe:01:2146559 0 EOF",  # garbage
            "short line",
            "",
        ]
    )
    assert proc_locks_holders(text, key) == [6377]


@pytest.mark.skipif(not LINUX, reason="struct flock layout checked on Linux here")
def test_f_getlk_names_an_fcntl_holder_and_zero_when_free(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path, mode="fcntl")
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        assert f_getlk_holder(fd) == holder.pid
    finally:
        os.close(fd)
    holder.release()
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        assert f_getlk_holder(fd) == 0
    finally:
        os.close(fd)


# ------------------------------------------------------------------ force_release (LCK-14)


def test_force_release_clears_an_old_stale_record_without_unlinking(lock_path: Path) -> None:
    stale_record(lock_path, age_s=600)
    inode = lock_path.stat().st_ino
    assert force_release(lock_path, older_than=60) is True
    assert lock_path.read_bytes() == b""
    assert lock_path.stat().st_ino == inode
    assert force_release(lock_path, older_than=60) is False  # nothing left to clear


def test_force_release_refuses_missing_fresh_and_empty(lock_path: Path) -> None:
    assert force_release(lock_path) is False  # no file
    lock_path.parent.mkdir(parents=True)
    lock_path.write_bytes(b"")
    assert force_release(lock_path) is False  # no record
    stale_record(lock_path, age_s=5)
    assert force_release(lock_path, older_than=60) is False  # too fresh
    assert read_lock_record(lock_path) is not None


def test_force_release_never_rips_out_a_live_holder(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path, backdate_s=3600)
    before = lock_path.read_bytes()
    assert force_release(lock_path, older_than=0) is False
    assert lock_path.read_bytes() == before
    assert probe(lock_path).held is True
    holder.release()


def test_force_release_refuses_while_this_process_holds(lock_path: Path) -> None:
    with MachineFileLock(lock_path):
        assert force_release(lock_path, older_than=0) is False


def test_force_release_toctou_record_changed_between_look_and_lock(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process cleared/replaced the stale record after our first read: hands off."""
    stale_record(lock_path, age_s=600, pid=111_111)
    real_probe = force_module.probe

    def probe_then_someone_else_writes(path: str) -> LockProbe:
        result = real_probe(path)
        stale_record(lock_path, age_s=900, pid=222_222)  # a different stale record appears
        return result

    monkeypatch.setattr(force_module, "probe", probe_then_someone_else_writes)
    assert force_release(lock_path, older_than=60) is False
    record = read_lock_record(lock_path)
    assert record is not None
    assert record.pid == 222_222  # untouched


def test_force_release_toctou_record_became_fresh(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale_record(lock_path, age_s=600)
    real_probe = force_module.probe

    def probe_then_fresh_holder_record(path: str) -> LockProbe:
        result = real_probe(path)
        lock_path.write_bytes(b"")  # a new holder came and went, leaving nothing
        return result

    monkeypatch.setattr(force_module, "probe", probe_then_fresh_holder_record)
    assert force_release(lock_path, older_than=60) is False


def test_force_release_backs_off_when_the_lock_is_taken_in_between(
    lock_path: Path, spawn_holder: SpawnHolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale_record(lock_path, age_s=600)
    real_probe = force_module.probe
    holders = []

    def probe_then_holder_arrives(path: str) -> LockProbe:
        result = real_probe(path)
        holders.append(spawn_holder(lock_path))
        return result

    monkeypatch.setattr(force_module, "probe", probe_then_holder_arrives)
    assert force_release(lock_path, older_than=60) is False
    record = read_lock_record(lock_path)
    assert record is not None
    assert record.pid == holders[0].pid  # the new holder's record is intact
    holders[0].release()


@pytest.mark.parametrize("bad", [-1, "60", True, float("nan")])
def test_force_release_validates_older_than(lock_path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="older_than"):
        force_release(lock_path, older_than=bad)  # type: ignore[arg-type]  # deliberately bad


@pytest.mark.skipif(not POSIX, reason="permissions")
@pytest.mark.skipif(POSIX and os.geteuid() == 0, reason="root bypasses file permissions")
def test_force_release_propagates_genuine_os_errors(lock_path: Path) -> None:
    stale_record(lock_path, age_s=600)
    lock_path.chmod(0o400)
    with pytest.raises(PermissionError):
        force_release(lock_path, older_than=60)


@pytest.mark.skipif(not POSIX, reason="O_DIRECTORY")
def test_force_release_propagates_os_errors_even_as_root(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale_record(lock_path, age_s=600)
    # O_DIRECTORY on a regular file fails with ENOTDIR whatever our privileges.
    monkeypatch.setattr(force_module, "_RW_FLAGS", os.O_RDWR | os.O_DIRECTORY)
    with pytest.raises(NotADirectoryError):
        force_release(lock_path, older_than=60)
    assert read_lock_record(lock_path) is not None  # nothing lost


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_probe_of_a_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "x.lock"
    os.mkfifo(fifo)
    result = probe(fifo)
    assert result.held is False
    assert result.record is None


# -- True holders (issue 10 §8): the pid that took a flock may have exited ----------------------

HANDOFF = """
import fcntl, os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)"],
    pass_fds=[fd], stdin=subprocess.DEVNULL, start_new_session=True,
)
print(child.pid, flush=True)
if sys.argv[2] == "exit":
    os._exit(0)
sys.stdin.read()
"""


def _wait_pid_gone(pid: int, timeout: float = 10.0) -> None:
    """The grandchild is reparented to init, which reaps it; bounded wait (a hang cap)."""
    import time

    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.skipif(not LINUX, reason="/proc/<pid>/fdinfo is Linux")
@pytest.mark.parametrize("locker", ["exit", "stay"])
def test_true_holders_are_every_process_sharing_the_locked_description(
    tmp_path: Path, locker: str
) -> None:
    import subprocess

    path = tmp_path / "refresh.lock"
    parent = subprocess.Popen(
        [sys.executable, "-c", HANDOFF, str(path), locker],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        if locker == "exit":
            parent.wait(timeout=10)
        found = probe(path)
        assert found.held is True
        # The kernel's table still names the pid that took the lock, alive or not.
        assert found.holder_pid == parent.pid
        expected = (child,) if locker == "exit" else tuple(sorted((parent.pid, child)))
        assert found.holder_pids == expected
        assert lock_holder_pids(path) == expected
    finally:
        os.kill(child, 9)
        if parent.poll() is None:
            parent.kill()
        parent.wait(timeout=10)
        assert parent.stdin is not None
        parent.stdin.close()
        parent.stdout.close()
    _wait_pid_gone(child)
    assert lock_holder_pids(path) == ()
    assert probe(path).holder_pids == ()


@pytest.mark.skipif(not LINUX, reason="/proc/<pid>/fdinfo is Linux")
def test_this_process_holding_is_listed_and_a_missing_file_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    assert lock_holder_pids(path) is None
    with MachineFileLock(path):
        assert lock_holder_pids(path) == (os.getpid(),)
        assert probe(path).holder_pids == (os.getpid(),)


def test_fdinfo_lock_lines() -> None:
    from kitty_filelock._probe import _fd_holds_exclusive_lock as holds

    head = "pos:\t0\nflags:\t02100002\nmnt_id:\t30\n"
    assert holds(head + "lock:\t1: FLOCK  ADVISORY  WRITE 6377 fe:00:2146559 0 EOF\n")
    assert not holds(head)
    assert not holds(head + "lock:\t1: FLOCK  ADVISORY  READ 6377 fe:00:2146559 0 EOF\n")
    assert not holds(head + "lock:\t1: -> FLOCK  ADVISORY  WRITE 6378 fe:00:2146559 0 EOF\n")
    assert not holds(head + "lock:\tgarbage\n")
