"""MachineFileLock: acquisition, record, release, errors, threads, async, fork (LCK-02..LCK-09,
LCK-15, LCK-19..LCK-22). Cross-process behaviour uses real holder processes (conftest)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import pickle
import re
import stat
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import kitty_filelock
from kitty_filelock import (
    FsInfo,
    KittyLockError,
    LockRecord,
    LockReentryError,
    LockTimeout,
    MachineFileLock,
    NetworkFilesystemWarning,
    UnsupportedPlatformError,
    probe,
    read_lock_record,
)
from kitty_filelock import _lock as lock_module

if TYPE_CHECKING:
    from conftest import SpawnHolder, TryLockInChild

POSIX = hasattr(os, "fork")


def state(lock: MachineFileLock) -> tuple[bool, LockRecord | None]:
    """(is_held, record), read afresh (keeps mypy from carrying narrowing across acquire)."""
    return lock.is_held, lock.record


def roundtrip(obj: object) -> Any:
    """Pickle and unpickle our own object (errors cross process boundaries)."""
    return pickle.loads(pickle.dumps(obj))  # noqa: S301 - our own bytes, never untrusted input


RECORD_KEYS = [
    "schema_version",
    "pid",
    "host",
    "acquired_at",
    "process_started_at",
    "boot_id",
    "package_version",
    "label",
    "mode",
    "fs_type",
    "max_hold_s",
]


def test_with_block_writes_record_into_the_file_and_clears_it_on_release(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path, label="refresh", max_hold=10.0)
    assert state(lock) == (False, None)
    with lock as entered:
        assert entered is lock
        assert lock.is_held
        on_disk = json.loads(lock_path.read_bytes())
        assert list(on_disk) == RECORD_KEYS  # LCK-06: every field, documented order
        assert len(lock_path.read_bytes()) < 512
        assert on_disk["schema_version"] == 1
        assert on_disk["pid"] == os.getpid()
        assert on_disk["label"] == "refresh"
        assert on_disk["max_hold_s"] == 10.0
        assert on_disk["mode"] in ("flock", "msvcrt")
        assert on_disk["package_version"] == kitty_filelock.__version__
        assert on_disk["acquired_at"].endswith("Z")
        assert len(on_disk["acquired_at"]) == 24
        record = lock.record
        assert record is not None
        assert record == read_lock_record(lock_path)
        assert record.process_started_at == on_disk["process_started_at"]
        assert lock.waited_s >= 0.0
        inode = lock_path.stat().st_ino
    assert state(lock) == (False, None)
    # LCK-07: truncated, never unlinked (same inode still there).
    assert lock_path.read_bytes() == b""
    assert lock_path.stat().st_ino == inode


def test_acquire_release_api_is_idempotent_and_reusable(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path)
    lock.release()  # releasing an unheld lock is a no-op
    for _ in range(3):
        lock.acquire()
        assert lock.is_held
        lock.release()
        lock.release()
        assert not lock.is_held
    assert "unheld" in repr(lock)
    assert str(lock_path) in repr(lock)


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
def test_creates_missing_parents_0700_and_file_0600(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c.lock"
    old = os.umask(0)
    try:
        with MachineFileLock(path):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"acquire_timeout": -1}, "acquire_timeout"),
        ({"acquire_timeout": float("nan")}, "acquire_timeout"),
        ({"acquire_timeout": True}, "acquire_timeout"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": "1"}, "poll_interval"),
        ({"max_hold": 0}, "max_hold"),
        ({"label": 3}, "label"),
        ({"mode": "posix"}, "mode"),
        ({"mode": 1}, "mode"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(
    lock_path: Path, kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle):
        MachineFileLock(lock_path, **kwargs)  # type: ignore[arg-type]  # deliberately bad


@pytest.mark.parametrize("bad", ["", b"/tmp/x.lock"])
def test_bad_paths_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="path"):
        MachineFileLock(bad)  # type: ignore[arg-type]  # deliberately bad


def test_non_path_object_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="path"):
        MachineFileLock(42)  # type: ignore[arg-type]  # deliberately bad


def test_bad_timeout_override_is_rejected(lock_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout"):
        MachineFileLock(lock_path).acquire(timeout=-0.5)


def test_unavailable_mode_is_unsupported_platform_error(lock_path: Path) -> None:
    missing = "msvcrt" if POSIX else "flock"
    with pytest.raises(UnsupportedPlatformError, match=missing) as info:
        MachineFileLock(lock_path, mode=missing)
    assert isinstance(info.value, KittyLockError)
    assert roundtrip(info.value).reason == info.value.reason


def test_timeout_zero_is_a_single_try_and_names_the_holder(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path)
    lock = MachineFileLock(lock_path, acquire_timeout=0)
    with pytest.raises(LockTimeout) as info:
        lock.acquire()
    err = info.value
    assert isinstance(err, TimeoutError)
    assert isinstance(err, KittyLockError)
    assert err.path == str(lock_path)
    assert err.holder is not None
    assert err.holder.pid == holder.pid
    assert err.holder.label == "holder"
    assert f"pid {err.holder.pid}" in str(err)
    assert str(err.holder.host) in str(err)
    assert err.waited_s >= 0.0
    clone = roundtrip(err)
    assert (clone.path, clone.holder, clone.waited_s) == (err.path, err.holder, err.waited_s)
    assert str(clone) == str(err)
    assert not lock.is_held
    holder.release()
    lock.acquire(timeout=0)
    lock.release()


def test_waiter_gets_the_lock_once_the_holder_releases(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path)
    got = threading.Event()
    done = threading.Event()
    lock = MachineFileLock(lock_path, acquire_timeout=60)

    def wait_for_it() -> None:
        lock.acquire()
        got.set()
        done.wait(60)
        lock.release()  # only the acquiring thread may release

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    assert not got.wait(0.05)  # still held by the child
    holder.release()
    assert got.wait(60)
    assert lock.is_held
    record = lock.record
    assert record is not None
    assert record.pid == os.getpid()
    assert lock.waited_s > 0.0
    done.set()
    waiter.join(timeout=60)
    assert not lock.is_held


@pytest.mark.skipif(not POSIX, reason="SIGKILL")
def test_sigkilled_holder_is_replaced_and_its_record_overwritten(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path)
    dead = read_lock_record(lock_path)
    assert dead is not None
    assert dead.pid == holder.pid
    holder.kill()
    # The kernel freed the lock with the process: the stale record is no obstacle (LCK-08).
    assert probe(lock_path).stale_record
    with MachineFileLock(lock_path, acquire_timeout=30) as lock:
        mine = read_lock_record(lock_path)
        assert mine is not None
        assert mine.pid == os.getpid()
        assert mine == lock.record


def test_backdated_record_of_a_live_holder_never_admits_a_second_holder(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path, backdate_s=3600)
    record = read_lock_record(lock_path)
    assert record is not None
    assert record.age_s() >= 3599
    with pytest.raises(LockTimeout) as info:
        MachineFileLock(lock_path, acquire_timeout=0.3).acquire()
    assert info.value.holder == record
    assert re.search(r"for 3[56]\d\d\.\d s", str(info.value))
    holder.release()


def test_same_object_reacquire_is_reentry_error(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path)
    with lock:
        with pytest.raises(LockReentryError) as info:
            lock.acquire()
        assert info.value.path == str(lock_path)
        assert isinstance(info.value, RuntimeError)
        assert isinstance(info.value, KittyLockError)
        assert roundtrip(info.value).path == info.value.path
        assert "re-entrant" in str(info.value)
    assert not lock.is_held


@pytest.mark.parametrize("mode", ["flock", "fcntl"] if POSIX else ["msvcrt"])
def test_same_thread_other_object_same_path_is_reentry_error(lock_path: Path, mode: str) -> None:
    first = MachineFileLock(lock_path, mode=mode)
    with first:
        alias = lock_path.parent / "hardlink.lock"  # another name, same (device, inode)
        os.link(lock_path, alias)
        with pytest.raises(LockReentryError):
            MachineFileLock(alias, mode=mode, acquire_timeout=5).acquire()
        assert first.is_held
        # fcntl mode: the failed attempt must not have dropped our process-wide lock.
        assert probe(lock_path).held is True


@pytest.mark.parametrize("mode", ["flock", "fcntl"] if POSIX else ["msvcrt"])
def test_threads_with_separate_objects_serialise(lock_path: Path, mode: str) -> None:
    inside = 0
    overlaps = 0
    counter = 0
    guard = threading.Lock()

    def worker() -> None:
        nonlocal inside, overlaps, counter
        lock = MachineFileLock(lock_path, mode=mode, acquire_timeout=60)
        for _ in range(50):
            with lock:
                with guard:
                    inside += 1
                    overlaps += inside > 1
                value = counter
                time.sleep(0)
                counter = value + 1
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert counter == 200
    assert overlaps == 0


@pytest.mark.skipif(not POSIX, reason="fcntl mode")
def test_fcntl_mode_thread_contention_does_not_drop_the_process_lock(
    lock_path: Path, try_lock_in_child: TryLockInChild
) -> None:
    holder_lock = MachineFileLock(lock_path, mode="fcntl")
    holder_lock.acquire()
    errors: list[BaseException] = []

    def contend() -> None:
        try:
            MachineFileLock(lock_path, mode="fcntl", acquire_timeout=0.2).acquire()
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    t = threading.Thread(target=contend)
    t.start()
    t.join(timeout=30)
    assert len(errors) == 1
    assert isinstance(errors[0], LockTimeout)
    # Readers in the holding process answer from the registry, never a second descriptor.
    assert read_lock_record(lock_path) == holder_lock.record
    assert probe(lock_path).holder_source == "registry"
    # Another process must still be excluded: the process-wide fcntl lock is intact.
    assert try_lock_in_child(lock_path, "fcntl") == "timeout"
    holder_lock.release()
    assert try_lock_in_child(lock_path, "fcntl") == "acquired"


@pytest.mark.skipif(not POSIX, reason="os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (pytest-timeout)
def test_forked_child_is_not_the_holder_and_cannot_release_the_parents_lock(
    lock_path: Path, try_lock_in_child: TryLockInChild
) -> None:
    lock = MachineFileLock(lock_path, acquire_timeout=5)
    lock.acquire()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: report and exit without running pytest teardown
        try:
            ok = not lock.is_held and lock.record is None
            lock.release()  # a no-op in the child: must not unlock the parent's flock
            try:
                MachineFileLock(lock_path, acquire_timeout=0).acquire()
                ok = False  # we got it: the parent's lock was dropped
            except LockTimeout:
                pass
            os.write(write_fd, b"ok" if ok else b"bad")
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        answer = os.read(read_fd, 16)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    assert answer == b"ok"
    assert lock.is_held
    # A third process still cannot take it.
    assert try_lock_in_child(lock_path, "auto") == "timeout"
    lock.release()


def test_write_failure_releases_the_lock_before_raising(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int, data: bytes, *, truncate: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    lock = MachineFileLock(lock_path)
    monkeypatch.setattr(MachineFileLock, "_write_record", staticmethod(full_disk))
    with pytest.raises(OSError, match="No space") as info:
        lock.acquire()
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(lock_path)
    assert not lock.is_held
    monkeypatch.undo()
    # Nothing was left locked: a fresh acquisition succeeds at once.
    with MachineFileLock(lock_path, acquire_timeout=0):
        pass


@pytest.mark.skipif(not hasattr(os, "pwrite"), reason="POSIX pwrite path")
def test_a_short_write_of_the_record_is_completed(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk or a signal may make pwrite write less than asked: the rest follows."""
    real_pwrite = os.pwrite
    calls: list[int] = []

    def trickle(fd: int, data: bytes | memoryview, offset: int) -> int:
        calls.append(offset)
        return real_pwrite(fd, bytes(data)[:7], offset)

    monkeypatch.setattr(os, "pwrite", trickle)
    with MachineFileLock(lock_path) as lock:
        monkeypatch.undo()
        assert read_lock_record(lock_path) == lock.record
    assert len(calls) > 2
    assert calls[:3] == [0, 7, 14]  # each call goes on from where the last one stopped


def test_a_relative_path_means_the_working_directory_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first = MachineFileLock("app.lock")
    monkeypatch.chdir(tmp_path / "b")
    second = MachineFileLock("app.lock")
    assert first.path == str(tmp_path / "a" / "app.lock")
    assert second.path == str(tmp_path / "b" / "app.lock")


def test_many_distinct_paths_all_resolve_exactly(tmp_path: Path) -> None:
    """More paths than the per-process path cache holds: each object still names its own."""
    paths = [tmp_path / f"lock-{i}" / ".." / f"l{i}.lock" for i in range(300)]
    assert [MachineFileLock(str(p)).path for p in paths] == [
        str(tmp_path / f"l{i}.lock") for i in range(300)
    ]


@pytest.mark.parametrize("mode", ["flock", "fcntl"] if POSIX else ["msvcrt"])
def test_a_longer_stale_record_is_fully_replaced(lock_path: Path, mode: str) -> None:
    lock_path.parent.mkdir(parents=True)
    lock_path.write_bytes(b"{" + b"x" * 900)  # a crashed holder's leftovers, longer than ours
    with MachineFileLock(lock_path, mode=mode) as lock:
        assert read_lock_record(lock_path) == lock.record
        assert json.loads(lock_path.read_bytes())["pid"] == os.getpid()


def test_eacces_from_open_is_a_genuine_error_not_contention(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LCK-03: only the lock call signals contention; EACCES from open() must not be retried
    until the deadline (that would surface as LockTimeout after 30 s)."""

    def denied(self: MachineFileLock) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", self.path)

    monkeypatch.setattr(MachineFileLock, "_open", denied)
    with pytest.raises(PermissionError) as info:
        MachineFileLock(lock_path, acquire_timeout=30).acquire()
    assert not isinstance(info.value, LockTimeout)
    assert info.value.filename == str(lock_path)


@pytest.mark.skipif(not POSIX, reason="fcntl backend")
def test_lock_call_errors_other_than_contention_propagate_with_the_path(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitty_filelock import _posix

    def no_locks(fd: int, *, shared: bool = False) -> bool:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(_posix.FlockBackend, "try_lock", staticmethod(no_locks))
    with pytest.raises(OSError, match="No locks") as info:
        MachineFileLock(lock_path, mode="flock", acquire_timeout=30).acquire()
    assert info.value.errno == errno.ENOLCK
    assert info.value.filename == str(lock_path)


def test_release_clears_state_even_if_the_truncate_fails(
    lock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = MachineFileLock(lock_path)
    lock.acquire()
    real_ftruncate = os.ftruncate

    def failing(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", failing)
    try:
        with pytest.raises(OSError, match="Input/output") as info:
            lock.release()
    finally:
        monkeypatch.setattr(os, "ftruncate", real_ftruncate)
    assert info.value.filename == str(lock_path)
    assert state(lock) == (False, None)
    # The OS lock was still dropped (unlock + close ran in finally).
    with MachineFileLock(lock_path, acquire_timeout=0):
        pass


def test_not_a_directory_propagates_with_errno_and_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "sub" / "x.lock"
    with pytest.raises(NotADirectoryError, match="Not a directory") as info:
        MachineFileLock(target, acquire_timeout=0).acquire()
    assert not isinstance(info.value, KittyLockError)
    assert info.value.errno == errno.ENOTDIR
    assert str(blocker) in str(info.value)


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
@pytest.mark.skipif(POSIX and os.geteuid() == 0, reason="root bypasses directory permissions")
def test_read_only_directory_propagates_permission_error_with_path(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    try:
        with pytest.raises(PermissionError) as info:
            MachineFileLock(ro / "x.lock", acquire_timeout=0).acquire()
        assert str(ro / "x.lock") in str(info.value)
    finally:
        ro.chmod(0o700)


def test_network_filesystem_warning_is_issued_once_per_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "sshfs"
    directory.mkdir()
    monkeypatch.setitem(
        lock_module._FS_CACHE,
        str(directory),
        FsInfo(fs_type="fuse.sshfs", network=True, mode="fcntl" if POSIX else "msvcrt"),
    )
    lock = MachineFileLock(directory / "a.lock")
    with pytest.warns(NetworkFilesystemWarning, match="this host only"):
        lock.acquire()
    try:
        record = lock.record
        assert record is not None
        assert record.fs_type == "fuse.sshfs"
        assert record.mode == ("fcntl" if POSIX else "msvcrt")
        assert lock.mode == record.mode
    finally:
        lock.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with MachineFileLock(directory / "a.lock"):
            pass


def test_long_labels_are_truncated_and_records_stay_small(lock_path: Path) -> None:
    with MachineFileLock(lock_path, label="é" * 500) as lock:
        record = lock.record
        assert record is not None
        assert record.label is not None
        assert 0 < len(record.label) <= 64
        assert len(lock_path.read_bytes()) < 512


async def test_async_with_acquires_and_releases(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path)
    async with lock as entered:
        assert entered is lock
        assert lock.is_held
        assert read_lock_record(lock_path) == lock.record
    assert state(lock) == (False, None)
    assert lock_path.read_bytes() == b""


async def test_async_wait_never_blocks_the_event_loop(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    """LCK-04: a 10 ms ticker keeps ticking while a coroutine waits 1 s for a held lock."""
    holder = spawn_holder(lock_path)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    with pytest.raises(LockTimeout):
        await MachineFileLock(lock_path, acquire_timeout=1.0).acquire_async()
    stop.set()
    await task
    holder.release()
    assert len(gaps) >= 20
    # A hang cap, not a speed target: a blocking wait would show one ~1 s gap.
    assert max(gaps) < 0.5


async def test_two_tasks_in_one_thread_wait_for_each_other(lock_path: Path) -> None:
    order: list[str] = []
    first_in = asyncio.Event()
    let_go = asyncio.Event()

    async def first() -> None:
        async with MachineFileLock(lock_path):
            order.append("first-in")
            first_in.set()
            await let_go.wait()
            order.append("first-out")

    async def second() -> None:
        await first_in.wait()

        async def take() -> None:
            async with MachineFileLock(lock_path, acquire_timeout=30):
                order.append("second-in")

        waiter = asyncio.create_task(take())
        await asyncio.sleep(0.02)
        assert not waiter.done()  # waiting, not a re-entry error
        let_go.set()
        await waiter

    await asyncio.gather(first(), second())
    assert order == ["first-in", "first-out", "second-in"]


async def test_same_task_reentry_is_an_error(lock_path: Path) -> None:
    async with MachineFileLock(lock_path):
        with pytest.raises(LockReentryError):
            await MachineFileLock(lock_path, acquire_timeout=5).acquire_async()


def test_record_is_rebuilt_lazily_and_cached(lock_path: Path) -> None:
    with MachineFileLock(lock_path, label="x") as lock:
        assert lock.record is lock.record


def test_backoff_waits_double_from_about_a_millisecond_up_to_poll_interval() -> None:
    delay = lock_module.FIRST_RETRY_S
    waits: list[float] = []
    for _ in range(10):
        wait, delay = MachineFileLock._next_delay(delay, 0.05)
        waits.append(wait)
    assert 0.0008 <= waits[0] <= 0.0012
    assert 0.0016 <= waits[1] <= 0.0024
    assert all(0.04 <= w <= 0.06 for w in waits[6:])


def test_module_constants_have_the_documented_defaults() -> None:
    assert lock_module.DEFAULT_ACQUIRE_TIMEOUT_S == 10.0
    assert lock_module.DEFAULT_POLL_INTERVAL_S == 0.05


async def test_cancelled_async_wait_leaves_nothing_held(
    lock_path: Path, spawn_holder: SpawnHolder
) -> None:
    holder = spawn_holder(lock_path)
    lock = MachineFileLock(lock_path, acquire_timeout=60)
    waiter = asyncio.create_task(lock.acquire_async())
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert state(lock) == (False, None)
    holder.release()
    await lock.acquire_async(timeout=0)
    assert lock.is_held
    lock.release()
