"""Writing kitty's private files: atomic replace, exclusive create, append (issue 12).

One implementation for every file kitty writes outside a lock: the session (kitty-auth-refresh),
the daemon state record and scope key (kitty-daemon-identity) and the daemon log
(kitty-orphan-sweep). The rules, enforced here once:

* the directory is created 0700 whatever the umask, and an existing one another user could
  write into (or owns) is refused before a secret goes in (``require_private_dir``);
* every file is 0600 from creation whatever the umask (``fchmod`` corrects a umask that takes
  away the owner's own bits) and the umask is never changed;
* nothing is written through a symlink: replace-style writes go to a fresh ``O_EXCL`` temp file
  that is renamed over the target (a planted symlink is replaced, its target untouched); appends
  open with ``O_NOFOLLOW`` and only ever write a regular file this uid owns;
* file data and the rename are fsynced (file, then directory) so a power cut leaves the old or
  the new content, never an empty file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Final

from ._errors import UnsafePathError
from ._safety import make_private_dirs, require_private_dir, unsafe_reason

#: Every file kitty creates: readable and writable by its owner only.
PRIVATE_FILE_MODE: Final = 0o600
_O_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)
_O_BINARY: Final = getattr(os, "O_BINARY", 0)
_O_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK: Final = getattr(os, "O_NONBLOCK", 0)
_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_BINARY | _O_NOFOLLOW
#: Directories cannot be opened (hence not fsynced) on Windows; NTFS journals the rename.
_CAN_FSYNC_DIR: bool = os.name != "nt"
#: A directory fsync some filesystems cannot do at all (not a failure of this write).
_FSYNC_UNSUPPORTED: Final = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def temp_name(name: str) -> str:
    """``.<name>.<pid>.<8 hex>.tmp``: hidden, unique per writer, recognisable as a leftover."""
    # os.urandom, not secrets (the same bytes): importing secrets costs ~8 ms at start-up, and
    # this name is unique, not secret.
    return f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``directory`` durable. Raises the OS error, except where the
    filesystem cannot fsync a directory at all (EINVAL/ENOTSUP) and on Windows."""
    if not _CAN_FSYNC_DIR:  # pragma: no cover - Windows
        return
    fd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _private_fd(path: str, flags: int) -> int:
    """Open (creating) ``path`` 0600 whatever the umask; the mode is set on the descriptor."""
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        # The umask can take bits away from 0600 too (umask 0277 gives 0400): set it exactly.
        if hasattr(os, "fchmod") and os.fstat(fd).st_mode & 0o777 != PRIVATE_FILE_MODE:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _make_parent(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        make_private_dirs(directory)
    except FileExistsError:
        # A file where a directory must be: not "the target exists" (what exclusive writers
        # listen for), so say what it is.
        raise NotADirectoryError(
            errno.ENOTDIR, "a component of the path is not a directory", directory
        ) from None
    return directory


def _prepared_dir(path: str) -> str:
    directory = _make_parent(path)
    require_private_dir(directory)
    return directory


def write_private_file(
    path: str | os.PathLike[str], data: bytes, *, exclusive: bool = False
) -> None:
    """Write ``data`` to ``path`` atomically and privately; readers see the old file or the new
    one, never a torn or empty one.

    The parent directory is created 0700 if missing and refused (``UnsafeDirectoryError``) if it
    exists writable by group/others or owned by another uid. The data goes to a fresh 0600 temp
    file beside ``path`` (``O_EXCL|O_NOFOLLOW``), is fsynced, then published: renamed over
    ``path`` (a symlink at ``path`` is replaced, never written through), or with
    ``exclusive=True`` hard-linked to ``path`` so an existing file is never replaced
    (``FileExistsError``; on a filesystem without hard links the file is created ``O_EXCL`` in
    place). The directory is fsynced last. On any failure the temp file is removed, ``path`` is
    as it was, and the OS error propagates.
    """
    target = os.fspath(path)
    directory = _prepared_dir(target)
    tmp = os.path.join(directory, temp_name(os.path.basename(target)))
    fd = _private_fd(tmp, _CREATE_FLAGS)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            _publish_exclusive(tmp, target, data)
        else:
            os.replace(tmp, target)
        fsync_dir(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _publish_exclusive(tmp: str, target: str, data: bytes) -> None:
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links here (FAT, some FUSE/SMB mounts): O_EXCL still never replaces a file;
        # a reader may see it briefly empty, which exclusive readers already tolerate.
        fd = _private_fd(target, _CREATE_FLAGS)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)


def _entry_problem(path: str) -> str | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    return unsafe_reason(st)


#: What ``link()`` says where the filesystem has no hard links.
_NO_HARD_LINKS: Final = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP})


def open_private_append(path: str | os.PathLike[str]) -> int:
    """A write-only, append-mode descriptor on ``path`` (a log), created 0600 if missing.

    Never follows a final symlink and only appends to a regular file with one name owned by this
    uid: anything else is ``UnsafePathError`` and nothing is written. The parent directory is
    created 0700 if missing. The caller closes the descriptor.
    """
    target = os.fspath(path)
    _make_parent(target)
    flags = os.O_WRONLY | os.O_APPEND | _O_CLOEXEC | _O_BINARY | _O_NOFOLLOW | _O_NONBLOCK
    try:
        fd = _private_fd(target, flags | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        try:
            fd = os.open(target, flags)
        except OSError:
            # ELOOP (a symlink), ENXIO (a FIFO nobody reads), EISDIR...: say what is there.
            reason = _entry_problem(target)
            if reason is not None:
                raise UnsafePathError(target, reason) from None
            raise
    try:
        reason = unsafe_reason(os.fstat(fd))
        if reason is not None:
            raise UnsafePathError(target, reason)
        if _O_NONBLOCK:
            # Only there so a FIFO at the path could not block the open; the child that inherits
            # this descriptor expects ordinary blocking writes.
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
