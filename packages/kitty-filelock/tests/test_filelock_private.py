"""Private files and the tolerant JSON reader: the one implementation every kitty package uses
(issue 12) for session.json, state.json, scope.key and the daemon logs."""

from __future__ import annotations

import errno
import json
import os
import pickle
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kitty_filelock import (
    InvalidFileError,
    KittyLockError,
    UnsafeDirectoryError,
    UnsafeLockPathError,
    UnsafePathError,
    fsync_dir,
    open_private_append,
    read_json_file,
    read_small_file,
    require_private_dir,
    write_private_file,
)

POSIX = os.name == "posix"
ROOT = POSIX and os.geteuid() == 0
NOBODY = 65534
posix_only = pytest.mark.skipif(not POSIX, reason="POSIX modes, links and FIFOs")
root_only = pytest.mark.skipif(not ROOT, reason="needs root to plant another user's entry")


def _bind_short(sock: socket.socket, path: Path) -> None:
    """Bind a UNIX socket at `path` by a relative name: a socket path is limited to ~108
    bytes, and pytest's tmp paths for long test names are longer."""
    here = os.getcwd()
    os.chdir(path.parent)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(here)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextmanager
def _umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


# ---- write_private_file ----------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277, 0o777])
@pytest.mark.parametrize("exclusive", [False, True])
def test_files_0600_and_dirs_0700_whatever_the_umask(
    tmp_path: Path, umask: int, exclusive: bool
) -> None:
    target = tmp_path / "home" / "daemon" / "state.json"
    with _umask(umask):
        write_private_file(target, b"{}", exclusive=exclusive)
        left = os.umask(umask)
    assert left == umask  # never changed
    assert _mode(target) == 0o600
    assert _mode(target.parent) == _mode(target.parent.parent) == 0o700
    assert target.read_bytes() == b"{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["state.json"]  # no temp left


@posix_only
def test_a_symlink_at_the_target_is_replaced_never_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "d").mkdir(mode=0o700)
    target = tmp_path / "d" / "session.json"
    target.symlink_to(victim)
    write_private_file(target, b"new")
    assert victim.read_bytes() == b"precious"
    assert not target.is_symlink()
    assert target.read_bytes() == b"new"


@posix_only
def test_exclusive_never_replaces_an_existing_entry(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o700)
    target = tmp_path / "d" / "scope.key"
    target.write_bytes(b"first")
    dangling = tmp_path / "d" / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    for path in (target, dangling):
        with pytest.raises(FileExistsError):
            write_private_file(path, b"second", exclusive=True)
    assert target.read_bytes() == b"first"
    assert not (tmp_path / "nowhere").exists()  # the link's target was not created
    assert sorted(p.name for p in target.parent.iterdir()) == ["dangling", "scope.key"]


@posix_only
@pytest.mark.parametrize("code", [errno.EPERM, errno.ENOTSUP])
def test_exclusive_without_hard_links_creates_in_place(
    tmp_path: Path, code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "link", no_links)
    target = tmp_path / "d" / "scope.key"
    write_private_file(target, b"k" * 64, exclusive=True)
    assert target.read_bytes() == b"k" * 64
    assert _mode(target) == 0o600
    with pytest.raises(FileExistsError):
        write_private_file(target, b"x", exclusive=True)
    assert target.read_bytes() == b"k" * 64


def test_a_link_error_that_is_not_about_hard_links_propagates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "link", full)
    target = tmp_path / "d" / "scope.key"
    with pytest.raises(OSError, match="No space"):
        write_private_file(target, b"k", exclusive=True)
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "d" / "session.json"
    write_private_file(target, b"old")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="No space"):
        write_private_file(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["session.json"]


def test_a_file_where_a_directory_must_be_is_not_a_directory_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    # Not FileExistsError: an exclusive writer would take that for "the target exists".
    with pytest.raises(NotADirectoryError):
        write_private_file(tmp_path / "file" / "daemon" / "scope.key", b"k", exclusive=True)


@posix_only
@pytest.mark.parametrize(
    ("code", "raises"), [(errno.EINVAL, False), (errno.ENOTSUP, False), (errno.EIO, True)]
)
def test_fsync_dir_ignores_only_filesystems_that_cannot(
    tmp_path: Path, code: int, raises: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fsync)
    if raises:
        with pytest.raises(OSError, match=os.strerror(code)) as info:
            fsync_dir(tmp_path)
        assert info.value.errno == code
    else:
        fsync_dir(tmp_path)


# ---- require_private_dir: an existing directory others could write (or own) -----------------


@posix_only
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o722])
def test_a_group_or_world_writable_directory_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "auth"
    shared.mkdir()
    os.chmod(shared, mode)
    with pytest.raises(UnsafeDirectoryError) as info:
        write_private_file(shared / "session.json", b"secret")
    err = info.value
    assert (err.path, err.mode, err.uid) == (str(shared), mode, os.geteuid())
    text = str(err)
    assert str(shared) in text
    assert f"{mode:04o}" in text
    assert f"chmod 700 {shared}" in text
    assert "chown" not in text
    assert list(shared.iterdir()) == []  # nothing written
    assert _mode(shared) == mode  # never chmod-ed
    assert isinstance(err, UnsafePathError)
    assert isinstance(err, KittyLockError)


@posix_only
@pytest.mark.parametrize("mode", [0o700, 0o755, 0o750, 0o705])
def test_a_private_or_read_only_shared_directory_is_accepted(tmp_path: Path, mode: int) -> None:
    mine = tmp_path / "auth"
    mine.mkdir()
    os.chmod(mine, mode)
    require_private_dir(mine)
    write_private_file(mine / "session.json", b"{}")
    assert _mode(mine) == mode


@root_only
def test_another_users_directory_is_refused_naming_owner_and_fix(tmp_path: Path) -> None:
    theirs = tmp_path / "daemon"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(UnsafeDirectoryError) as info:
        write_private_file(theirs / "state.json", b"{}")
    text = str(info.value)
    assert f"owned by uid {NOBODY}, not by you (uid 0)" in text
    assert f"chown 0 {theirs} && chmod 700 {theirs}" in text
    assert list(theirs.iterdir()) == []


def test_unsafe_directory_error_pickles() -> None:
    err = UnsafeDirectoryError("/h/auth", 0o777, 1001, 1000)
    clone = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert (clone.path, clone.mode, clone.uid, clone.euid) == ("/h/auth", 0o777, 1001, 1000)
    assert str(clone) == str(err)
    plain = pickle.loads(pickle.dumps(UnsafePathError("/p", "is a FIFO")))  # noqa: S301
    assert str(plain) == str(UnsafePathError("/p", "is a FIFO"))


def test_the_lock_error_is_an_unsafe_path_error() -> None:
    assert issubclass(UnsafeLockPathError, UnsafePathError)
    assert "refusing to lock /l" in str(UnsafeLockPathError("/l", "is a symbolic link"))


# ---- open_private_append (daemon logs) ---------------------------------------------------------


@posix_only
@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_append_creates_0600_and_appends(tmp_path: Path, umask: int) -> None:
    log = tmp_path / "daemon" / "daemon.log"
    for line in (b"one\n", b"two\n"):
        with _umask(umask):
            fd = open_private_append(log)
        try:
            assert os.get_blocking(fd)  # the child inheriting it expects ordinary writes
            os.write(fd, line)
        finally:
            os.close(fd)
    assert log.read_bytes() == b"one\ntwo\n"
    assert _mode(log) == 0o600
    assert _mode(log.parent) == 0o700


@posix_only
@pytest.mark.parametrize("kind", ["symlink", "dangling", "hardlink", "fifo", "socket", "dir"])
def test_append_refuses_what_is_not_its_own_regular_file(tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    log = tmp_path / "daemon.log"
    held: socket.socket | None = None
    if kind == "symlink":
        log.symlink_to(victim)
    elif kind == "dangling":
        log.symlink_to(tmp_path / "planted-by-someone")
    elif kind == "hardlink":
        os.link(victim, log)
    elif kind == "fifo":
        os.mkfifo(log)
    elif kind == "socket":
        held = socket.socket(socket.AF_UNIX)
        _bind_short(held, log)
    else:
        log.mkdir()
    try:
        with pytest.raises(UnsafePathError) as info:
            open_private_append(log)
    finally:
        if held is not None:
            held.close()
    assert str(log) in str(info.value)
    assert "remove that entry" in str(info.value)
    assert victim.read_bytes() == b"precious"
    assert not (tmp_path / "planted-by-someone").exists()


@root_only
def test_append_refuses_another_users_log(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    log.write_bytes(b"theirs\n")
    os.chown(log, NOBODY, NOBODY)
    with pytest.raises(UnsafePathError, match=f"belongs to uid {NOBODY}"):
        open_private_append(log)
    assert log.read_bytes() == b"theirs\n"


def test_append_passes_other_os_errors_through(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        open_private_append(tmp_path / "file" / "daemon.log")


# ---- read_json_file --------------------------------------------------------------------------


def _strict(text: str) -> Any:
    def no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    return json.loads(text, object_pairs_hook=no_dupes)


def test_read_json_file_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"a": [1, 2]}')
    assert read_json_file(path, max_bytes=64) == {"a": [1, 2]}
    assert read_json_file(path, max_bytes=13) == {"a": [1, 2]}  # exactly the cap is fine
    with pytest.raises(FileNotFoundError):
        read_json_file(tmp_path / "missing.json", max_bytes=64)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"a": 1}' + b" " * 100, "is larger than 64 bytes"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"{not json", "is not valid JSON (at byte 1)"),
        (b"", "is not valid JSON (at byte 0)"),
        (b"[" * 100_000 + b"]" * 100_000, "is JSON nested too deeply"),
        (b'{"a": 1, "a": 2}', "is not valid JSON"),  # the caller's strict decoder said no
    ],
    ids=["too-large", "not-utf8", "not-json", "empty", "deep", "strict"],
)
def test_what_is_not_json_is_an_invalid_file_error(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    max_bytes = 64 if reason.startswith("is larger") else 1 << 20
    with pytest.raises(InvalidFileError) as info:
        read_json_file(path, max_bytes=max_bytes, loads=_strict)
    assert info.value.reason == reason
    assert info.value.path == str(path)
    assert isinstance(info.value, ValueError)
    assert path.read_bytes() == content  # never modified
    clone = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own bytes
    assert (clone.path, clone.reason) == (str(path), reason)


READ_FIFO = r"""
import os, sys
from kitty_filelock import InvalidFileError, read_json_file
os.mkfifo(sys.argv[1])
try:
    read_json_file(sys.argv[1], max_bytes=64)
except InvalidFileError as exc:
    print(exc.reason)
"""


@posix_only
def test_a_fifo_is_reported_never_waited_on(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", READ_FIFO, str(tmp_path / "session.json")],
        capture_output=True,
        text=True,
        timeout=60,  # a hang cap: a blocking open() would never return
        check=True,
    )
    assert done.stdout.strip() == "is a FIFO, not a regular file"


@posix_only
@pytest.mark.parametrize("kind", ["socket", "dir"])
def test_sockets_and_directories_are_invalid(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "state.json"
    held: socket.socket | None = None
    if kind == "socket":
        held = socket.socket(socket.AF_UNIX)
        _bind_short(held, path)
        expected = "is a socket, not a regular file"
    else:
        path.mkdir()
        expected = "is a directory, not a regular file"
    try:
        with pytest.raises(InvalidFileError) as info:
            read_json_file(path, max_bytes=64)
    finally:
        if held is not None:
            held.close()
    assert info.value.reason == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELOOP is Linux's errno")
@pytest.mark.parametrize("target", ["real.json", "/dev/zero", "state.json"])
def test_a_symlink_is_never_followed(tmp_path: Path, target: str) -> None:
    (tmp_path / "real.json").write_text("{}")
    path = tmp_path / "state.json"
    path.symlink_to(target)  # a valid file, a device, a loop: none is opened
    with pytest.raises(OSError, match="symbolic links") as info:
        read_json_file(path, max_bytes=64)
    assert info.value.errno == errno.ELOOP
    assert not isinstance(info.value, InvalidFileError)  # unreadable, not invalid content


@root_only
def test_owner_only_refuses_another_users_file_as_permission_error(tmp_path: Path) -> None:
    path = tmp_path / "session.json"
    path.write_text("{}")
    os.chown(path, NOBODY, NOBODY)
    assert read_json_file(path, max_bytes=64) == {}
    with pytest.raises(PermissionError) as info:
        read_json_file(path, max_bytes=64, owner_only=True)
    assert info.value.strerror == f"is owned by uid {NOBODY}, not by you (uid 0)"
    assert info.value.errno == errno.EACCES


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_private_only_refuses_a_file_others_may_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "scope.key"
    path.write_bytes(b"k" * 64)
    os.chmod(path, mode)
    assert read_small_file(path, max_bytes=64) == b"k" * 64
    with pytest.raises(PermissionError) as info:
        read_small_file(path, max_bytes=64, private_only=True)
    assert info.value.strerror == f"is mode {mode:04o}, open to group or others"
    os.chmod(path, 0o600)
    assert read_small_file(path, max_bytes=64, private_only=True, owner_only=True) == b"k" * 64
