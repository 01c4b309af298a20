"""Hostile lock paths, modes under any umask, errors naming the path (issue 11 §3-6, §7 pins)."""

from __future__ import annotations

import errno
import gc
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kitty_filelock import (
    LockTimeout,
    MachineFileLock,
    UnsafeLockPathError,
    force_release,
    probe,
)
from kitty_filelock import _posix as posix

if TYPE_CHECKING:
    from conftest import Holder, SpawnHolder, TryLockInChild

POSIX = os.name == "posix"
SETTINGS = b"[user]\nname = precious\n"


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    path = tmp_path / "settings.conf"
    path.write_bytes(SETTINGS)
    return path


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_a_final_symlink_is_refused_and_its_target_untouched(
    tmp_path: Path, settings: Path
) -> None:
    link = tmp_path / "app.lock"
    link.symlink_to(settings)
    with pytest.raises(UnsafeLockPathError) as info:
        MachineFileLock(link).acquire(timeout=0)
    assert info.value.path == str(link)
    assert "symbolic link" in str(info.value)
    assert force_release(link, older_than=0) is False  # not a record: nothing to clear
    assert settings.read_bytes() == SETTINGS


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_force_release_never_truncates_through_a_symlink(tmp_path: Path) -> None:
    import datetime as dt
    import json

    target = tmp_path / "looks-stale.json"
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    target.write_text(json.dumps({"pid": 999_999, "acquired_at": old.isoformat()}))
    before = target.read_bytes()
    link = tmp_path / "app.lock"
    link.symlink_to(target)
    with pytest.raises(UnsafeLockPathError, match="symbolic link"):
        force_release(link, older_than=0)
    assert target.read_bytes() == before


@pytest.mark.skipif(not POSIX, reason="POSIX link and FIFO semantics")
def test_a_hard_link_or_fifo_is_refused(tmp_path: Path, settings: Path) -> None:
    hard = tmp_path / "hard.lock"
    os.link(settings, hard)
    with pytest.raises(UnsafeLockPathError, match="hard link"):
        MachineFileLock(hard).acquire(timeout=0)
    assert settings.read_bytes() == SETTINGS
    fifo = tmp_path / "fifo.lock"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeLockPathError, match="not a regular file"):
        MachineFileLock(fifo).acquire(timeout=0)  # and no hang on open


@pytest.mark.skipif(not POSIX or os.geteuid() != 0, reason="needs root to plant a foreign file")
def test_another_users_file_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "planted.lock"
    planted.write_bytes(SETTINGS)
    os.chown(planted, 65534, 65534)
    with pytest.raises(UnsafeLockPathError, match="uid 65534"):
        MachineFileLock(planted).acquire(timeout=0)
    assert planted.read_bytes() == SETTINGS


@pytest.mark.skipif(not POSIX, reason="flock semantics")
def test_unlinked_between_open_and_lock_is_never_a_second_holder(
    lock_path: Path, spawn_holder: SpawnHolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tmp cleaner unlinks the file after our open; another process creates and locks a new
    inode at the path; then our lock on the old inode is granted. We must not hold too."""
    with MachineFileLock(lock_path):  # create it
        pass
    real_try = posix.FlockBackend.try_lock
    holders: list[Holder] = []

    def cleaner_strikes(fd: int, *, shared: bool = False) -> bool:
        if not holders:
            os.unlink(lock_path)
            holders.append(spawn_holder(lock_path, mode="flock"))  # holds the NEW inode
        return real_try(fd, shared=shared)

    monkeypatch.setattr(posix.FlockBackend, "try_lock", staticmethod(cleaner_strikes))
    with pytest.raises(LockTimeout):
        MachineFileLock(lock_path, mode="flock").acquire(timeout=0.3)
    holders[0].release()


UMASK_CHILD = r"""
import os, stat, sys
from kitty_filelock import MachineFileLock
os.umask(int(sys.argv[2], 8))
nested = os.path.join(sys.argv[1], "a", "b", "new.lock")
existing = os.path.join(sys.argv[1], "plain.lock")
for path in (nested, existing):
    with MachineFileLock(path):
        pass
modes = [stat.S_IMODE(os.stat(p).st_mode) for p in
         (os.path.dirname(os.path.dirname(nested)), os.path.dirname(nested), nested, existing)]
print(" ".join(oct(m) for m in modes), oct(os.umask(0)))
"""


@pytest.mark.skipif(not POSIX, reason="POSIX modes")
@pytest.mark.parametrize("umask", ["0277", "0000", "0022"])
def test_promised_modes_whatever_the_umask(tmp_path: Path, umask: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", UMASK_CHILD, str(tmp_path), umask],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    *modes, left = done.stdout.split()
    assert modes == ["0o700", "0o700", "0o600", "0o600"]
    assert left == oct(int(umask, 8))  # the process umask itself was never changed


def test_release_errors_name_the_path(lock_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = MachineFileLock(lock_path)
    lock.acquire()
    assert lock._backend is not None
    backend_type = type(lock._backend)
    real_unlock = lock._backend.unlock

    def broken(fd: int) -> None:
        real_unlock(fd)
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(backend_type, "unlock", staticmethod(broken))
    with pytest.raises(OSError, match="I/O error") as info:
        lock.release()
    assert info.value.filename == str(lock_path)
    assert info.value.errno == errno.EIO
    assert not lock.is_held


def test_probe_in_the_same_process_sees_the_release(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path)
    with lock:
        assert probe(lock_path).held is True
    assert probe(lock_path).held is False


DROP_CHILD = r"""
import gc, sys
from kitty_filelock import MachineFileLock
MachineFileLock(sys.argv[1]).acquire()  # the only reference is dropped at once
gc.collect()
print("dropped", flush=True)
sys.stdin.read()
"""


def test_a_dropped_reference_keeps_the_lock_until_process_exit(
    lock_path: Path, try_lock_in_child: TryLockInChild
) -> None:
    """Documented choice: never released behind the holder's back by the garbage collector."""
    child = subprocess.Popen(
        [sys.executable, "-c", DROP_CHILD, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "dropped"
        assert try_lock_in_child(lock_path) == "timeout"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
        assert child.stdout is not None
        child.stdout.close()
    assert try_lock_in_child(lock_path) == "acquired"  # the OS freed it with the process
    gc.collect()


def test_force_release_default_age_is_sixty_seconds(tmp_path: Path) -> None:
    import datetime as dt
    import json

    path = tmp_path / "stale.lock"

    def record(age_s: float) -> None:
        when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
        path.write_text(json.dumps({"pid": 999_999, "acquired_at": when.isoformat()}))

    record(55.0)
    assert force_release(path) is False
    record(65.0)
    assert force_release(path) is True
    assert path.read_bytes() == b""


def test_a_lock_file_created_in_an_existing_directory_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    with MachineFileLock(path):
        pass
    if POSIX:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
