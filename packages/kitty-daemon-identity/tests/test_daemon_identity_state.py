"""State record (DID-10) and scope key (DID-11): atomic, private from creation, lenient reads."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from kitty_daemon_identity import (
    DaemonFamily,
    KittyDaemonError,
    StateRecord,
    _state,
    ensure_scope_key,
    read_scope_key,
    read_state,
    state_path,
    write_state,
)

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX modes and uids")

RECORD = StateRecord(
    family=DaemonFamily.SYNC,
    pid=5150,
    port=9401,
    process_started_at=1746093600.52,
    package_version="0.4.0",
    protocol_version=1,
    started_at="2025-05-01T10:00:01Z",
    instance_id="6f1d9c0e2b7a4c58a9e3d1f0b2c4a6e8",
    scope_id="/home/u/.kitty/daemon#3b9f0c7a5d12e4f8",
)


def test_round_trip_and_spec_shape(tmp_path: Path) -> None:
    root = tmp_path / "daemon"
    path = write_state(root, RECORD)
    assert path == root / "state.json"
    assert read_state(root) == RECORD
    assert read_state(root, DaemonFamily.DASHBOARD) is None
    on_disk = json.loads(path.read_text())
    assert on_disk == {
        "schema_version": 1,
        "family": "sync",
        "pid": 5150,
        "port": 9401,
        "process_started_at": 1746093600.52,
        "package_version": "0.4.0",
        "protocol_version": 1,
        "started_at": "2025-05-01T10:00:01Z",
        "instance_id": "6f1d9c0e2b7a4c58a9e3d1f0b2c4a6e8",
        "scope_id": "/home/u/.kitty/daemon#3b9f0c7a5d12e4f8",
    }


def test_dashboard_record_uses_its_own_file(tmp_path: Path) -> None:
    dash = replace(RECORD, family=DaemonFamily.DASHBOARD)
    write_state(tmp_path, dash)
    assert (tmp_path / "dashboard-state.json").exists()
    assert not (tmp_path / "state.json").exists()
    assert read_state(tmp_path, DaemonFamily.DASHBOARD) == dash
    assert read_state(tmp_path, DaemonFamily.SYNC) is None


@posix_only
def test_files_are_private_from_creation(tmp_path: Path) -> None:
    root = tmp_path / "new" / "daemon"
    old = os.umask(0)  # even with a permissive umask nothing is group/other-accessible
    try:
        write_state(root, RECORD)
        ensure_scope_key(root)
    finally:
        os.umask(old)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "state.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "scope.key").stat().st_mode) == 0o600


def test_replace_leaves_no_temp_files(tmp_path: Path) -> None:
    write_state(tmp_path, RECORD)
    write_state(tmp_path, replace(RECORD, pid=6000))
    got = read_state(tmp_path)
    assert got is not None
    assert got.pid == 6000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_failed_write_removes_temp_and_keeps_old_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_state(tmp_path, RECORD)

    def boom(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        write_state(tmp_path, replace(RECORD, pid=7))
    assert read_state(tmp_path) == RECORD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe",
        b"{",
        b"[]",
        b'{"schema_version": 1}',
        b'{"a": 1, "a": 1}',
        b"x" * 70000,
    ],
)
def test_garbage_reads_as_none_and_is_not_touched(tmp_path: Path, content: bytes) -> None:
    path = state_path(tmp_path, DaemonFamily.SYNC)
    path.write_bytes(content)
    assert read_state(tmp_path) is None
    assert path.read_bytes() == content  # readers never delete or rewrite what they cannot parse


BAD_VALUES = [
    ("schema_version", 0),
    ("schema_version", True),
    ("family", "other"),
    ("family", 3),
    ("pid", 0),
    ("pid", True),
    ("port", 70000),
    ("port", "9401"),
    ("process_started_at", "x"),
    ("process_started_at", False),
    ("process_started_at", 0),
    ("process_started_at", 10**400),  # JSON ints are unbounded: past float range, not a crash
    ("protocol_version", 0),
    ("package_version", None),
    ("scope_id", 5),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
def test_wrong_types_read_as_none(tmp_path: Path, key: str, value: object) -> None:
    data = RECORD.to_dict()
    data[key] = value
    state_path(tmp_path, DaemonFamily.SYNC).write_text(json.dumps(data))
    assert read_state(tmp_path) is None


def test_newer_schema_with_valid_keys_is_read(tmp_path: Path) -> None:
    data = {**RECORD.to_dict(), "schema_version": 2, "extra": [1]}
    state_path(tmp_path, DaemonFamily.SYNC).write_text(json.dumps(data))
    assert read_state(tmp_path) == RECORD


def test_missing_root_reads_as_none(tmp_path: Path) -> None:
    assert read_state(tmp_path / "nope") is None
    assert read_scope_key(tmp_path / "nope") is None


def test_scope_key_created_once_and_never_rewritten(tmp_path: Path) -> None:
    key = ensure_scope_key(tmp_path)
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert ensure_scope_key(tmp_path) == key
    assert read_scope_key(tmp_path) == key
    assert (tmp_path / "scope.key").read_text() == key


def test_concurrent_creators_agree(tmp_path: Path) -> None:
    keys: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait(timeout=10)
        keys.append(ensure_scope_key(tmp_path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(keys) == 8
    assert len(set(keys)) == 1


@posix_only
def test_group_readable_key_is_ignored_and_ensure_refuses(tmp_path: Path) -> None:
    key = ensure_scope_key(tmp_path)
    (tmp_path / "scope.key").chmod(0o640)
    assert read_scope_key(tmp_path) is None
    with pytest.raises(KittyDaemonError, match=r"scope\.key exists but is unusable") as info:
        ensure_scope_key(tmp_path)
    assert key not in str(info.value)  # never a secret in a message
    assert (tmp_path / "scope.key").read_text() == key  # not rewritten


@posix_only
def test_key_owned_by_someone_else_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_scope_key(tmp_path)
    me = os.getuid()
    # The uid seam of kitty-filelock's reader, which read_scope_key uses (issue 12).
    monkeypatch.setattr("kitty_filelock._jsonfile._GETEUID", lambda: me + 1)
    assert read_scope_key(tmp_path) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_key_is_ignored_without_blocking(tmp_path: Path) -> None:
    """A FIFO at scope.key (e.g. planted in another root a forced sweep reads) never hangs us."""
    fifo = tmp_path / "scope.key"
    os.mkfifo(fifo, 0o600)
    box: list[str | None] = []
    reader = threading.Thread(target=lambda: box.append(read_scope_key(tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=20.0)  # generous hang cap
    if reader.is_alive():  # unblock the stuck open() so the thread can end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=20.0)
        pytest.fail("read_scope_key blocked on a FIFO")
    assert box == [None]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifo_state_record_reads_as_none_without_blocking(tmp_path: Path) -> None:
    fifo = state_path(tmp_path, DaemonFamily.SYNC)
    os.mkfifo(fifo, 0o600)
    box: list[StateRecord | None] = []
    reader = threading.Thread(target=lambda: box.append(read_state(tmp_path)), daemon=True)
    reader.start()
    reader.join(timeout=20.0)  # generous hang cap
    if reader.is_alive():  # unblock the stuck open() so the thread can end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=20.0)
        pytest.fail("read_state blocked on a FIFO")
    assert box == [None]


def test_malformed_or_non_regular_key_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "scope.key").write_text("not hex")
    if os.name != "nt":
        (tmp_path / "scope.key").chmod(0o600)
    assert read_scope_key(tmp_path) is None
    other = tmp_path / "d"
    (other / "scope.key").mkdir(parents=True)
    assert read_scope_key(other) is None


def test_ensure_gives_up_on_a_truncated_key_after_a_bounded_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_state, "_KEY_SETTLE_ATTEMPTS", 3)
    monkeypatch.setattr(_state, "_KEY_SETTLE_SLEEP_S", 0.001)
    path = tmp_path / "scope.key"
    path.write_text("abc")  # a creator that died mid-write
    path.chmod(0o600)
    with pytest.raises(KittyDaemonError, match="remove it"):
        ensure_scope_key(tmp_path)


def test_ensure_waits_for_a_concurrent_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "scope.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # created, not yet written
    calls = 0
    real_read = _state.read_scope_key

    def read_then_finish(root: Path) -> str | None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the "other process" completes its write while we wait
            os.write(fd, b"ab" * 32)
            os.close(fd)
        return real_read(root)

    monkeypatch.setattr(_state, "read_scope_key", read_then_finish)
    assert ensure_scope_key(tmp_path) == "ab" * 32


@pytest.mark.parametrize(
    "bad",
    [
        replace(RECORD, pid=0),
        replace(RECORD, port=70000),
        replace(RECORD, process_started_at=-1.0),
        replace(RECORD, protocol_version=0),
    ],
)
def test_invalid_record_is_refused_and_nothing_written(tmp_path: Path, bad: StateRecord) -> None:
    with pytest.raises(ValueError, match="refusing to write an invalid state record"):
        write_state(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


UMASK_CHILD = r"""
import os, stat, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from kitty_daemon_identity import daemon_root, ensure_scope_key
home = Path(sys.argv[1]) / "new-home"
ensure_scope_key(daemon_root(home))
print(oct(stat.S_IMODE(home.stat().st_mode)), oct(stat.S_IMODE(daemon_root(home).stat().st_mode)))
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("umask", ["000", "277"])
def test_home_and_daemon_root_are_0700_whatever_the_umask(tmp_path: Path, umask: str) -> None:
    # Issue 12: Path.mkdir(parents=True) made the home 0777 under umask 000, and another local
    # user could then plant files in it.
    done = subprocess.run(
        [sys.executable, "-c", UMASK_CHILD, str(tmp_path), umask],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["0o700", "0o700"]


# ---- kitty-filelock's private writer and reader (issue 12) ------------------------------------


@posix_only
def test_state_and_key_are_0600_even_under_a_umask_that_takes_the_owners_bits(
    tmp_path: Path,
) -> None:
    root = tmp_path / "home" / "daemon"
    old = os.umask(0o277)
    try:
        path = write_state(root, RECORD)
        ensure_scope_key(root)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # was 0400
    assert stat.S_IMODE((root / "scope.key").stat().st_mode) == 0o600
    assert read_scope_key(root) is not None


@posix_only
@pytest.mark.parametrize("mode", [0o777, 0o770])
def test_a_daemon_root_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """The umask-000 chain of issue 12: a world-writable daemon/ let another user swap in a
    planted state.json or scope.key. Now nothing kitty-owned is written into such a root."""
    from kitty_filelock import UnsafeDirectoryError

    root = tmp_path / "daemon"
    root.mkdir()
    os.chmod(root, mode)
    with pytest.raises(UnsafeDirectoryError, match=rf"chmod 700 {root}"):
        write_state(root, RECORD)
    with pytest.raises(UnsafeDirectoryError, match=f"{mode:04o}"):
        ensure_scope_key(root)
    assert list(root.iterdir()) == []


@posix_only
def test_a_symlinked_state_record_is_absent_and_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    planted = tmp_path / "planted.json"
    planted.write_text(json.dumps(replace(RECORD, pid=1).to_dict()))
    root = tmp_path / "daemon"
    root.mkdir(mode=0o700)
    state_path(root, DaemonFamily.SYNC).symlink_to(planted)
    assert read_state(root) is None  # was the planted record, followed through the link
    write_state(root, RECORD)
    assert read_state(root) == RECORD
    assert json.loads(planted.read_text())["pid"] == 1


@posix_only
def test_the_scope_key_is_never_seen_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published whole (a hard link from a complete temp file): a writer that stops after its
    first byte leaves no key at all, where it used to leave a torn one at the real path."""
    root = tmp_path / "daemon"
    real_write = os.write

    def one_byte_then_crash(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data[:1]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", one_byte_then_crash)
    with pytest.raises(OSError, match="No space"):
        ensure_scope_key(root)
    monkeypatch.undo()
    assert list(root.iterdir()) == []
    key = ensure_scope_key(root)  # the next caller creates a fresh one instead of giving up
    assert read_scope_key(root) == key


def test_a_state_record_from_a_health_payload_is_the_daemons_self_report(tmp_path: Path) -> None:
    """One place turns a health payload into the record a spawner writes (issue 12)."""
    from kitty_daemon_identity import HealthPayload

    payload = HealthPayload(
        schema_version=2,
        status="ok",
        daemon_family="sync",
        protocol_version=1,
        package_version="1.4.0",
        singleton_scope_id="scope-1",
        daemon_root=str(tmp_path),
        pid=4242,
        port=9401,
        process_started_at=1.7e9,
        started_at="2026-01-01T00:00:00Z",
        busy=False,
        idle_s=0.0,
        instance_id="a" * 32,
    )
    record = StateRecord.from_health(payload)
    assert record == StateRecord(
        "sync", 4242, 9401, 1.7e9, "1.4.0", 1, "2026-01-01T00:00:00Z", "a" * 32, "scope-1"
    )
    write_state(tmp_path, record)
    assert read_state(tmp_path) == record
