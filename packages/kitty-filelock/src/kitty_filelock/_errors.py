"""Errors raised by kitty-filelock.

```
KittyLockError(OSError)
├── LockTimeout(KittyLockError, TimeoutError)       path, holder, waited_s
├── LockReentryError(KittyLockError, RuntimeError)  path
├── LockNotOwnedError(KittyLockError, RuntimeError) path
├── UnsafePathError(KittyLockError)                 path, reason
│   ├── UnsafeLockPathError(UnsafePathError)        path, reason
│   └── UnsafeDirectoryError(UnsafePathError)       path, mode, uid, euid
├── InvalidFileError(KittyLockError, ValueError)    path, reason
└── UnsupportedPlatformError(KittyLockError)        reason
NetworkFilesystemWarning(UserWarning)               path, fs_type
```

Genuine OS errors (ENOSPC, EROFS, EACCES on the directory, ENOTDIR, ...) are not wrapped: they
propagate as the builtin ``OSError`` subclass with the original errno and the path.

Every error pickles (it crosses process boundaries in worker pools): each defines ``__reduce__``
from its own structured attributes, because ``OSError``'s default reduction would replay ``args``
into the wrong constructor parameters.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._record import LockRecord


class KittyLockError(OSError):
    """Root of every error kitty-filelock raises itself."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)


class LockTimeout(KittyLockError, TimeoutError):
    """The lock stayed held by someone else until the acquire deadline."""

    def __init__(self, path: str | os.PathLike[str], holder: LockRecord | None, waited_s: float):
        self.path = os.fspath(path)
        self.holder = holder
        self.waited_s = float(waited_s)
        super().__init__(self._message())

    def _message(self) -> str:
        if self.holder is None:
            who = "by a holder that left no readable record"
        else:
            h = self.holder
            label = f" ({h.label})" if h.label else ""
            who = f"by pid {h.pid} on host {h.host or '?'}{label} for {h.age_s():.1f} s"
        return (
            f"could not lock {self.path} within {self.waited_s:.2f} s: it is held {who}; "
            "wait for that process, raise acquire_timeout, or inspect it with probe()"
        )

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.holder, self.waited_s))


class LockReentryError(KittyLockError, RuntimeError):
    """The calling thread (or task) already holds this path; locks are not re-entrant."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"{self.path} is already locked by this thread; kitty locks are not re-entrant "
            "- release it first or restructure so the lock is taken once"
        )

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path,))


class LockNotOwnedError(KittyLockError, RuntimeError):
    """``release()`` from a thread (or task) that did not acquire: the lock is left untouched."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"{self.path} is held by another thread or task of this process, not the caller; "
            "only the one that acquired may release it (nothing was changed)"
        )

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path,))


class UnsafePathError(KittyLockError):
    """A path kitty was about to write is not a regular file it may write: a symlink, a hard link
    to another file, a FIFO/device/directory, or a file of another user. Nothing was written."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"refusing to write {self.path}: it {self.reason}; kitty only writes regular files "
            "it owns, never through a link - remove that entry and retry"
        )

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class UnsafeLockPathError(UnsafePathError):
    """The lock path is not a regular file kitty may write: a symlink, a hard link to another
    file, a FIFO/device/directory, or a file of another user. Nothing was written to it."""

    def _message(self) -> str:
        return (
            f"refusing to lock {self.path}: it {self.reason}; kitty writes its holder record "
            "into the lock file, so it only uses a regular file it owns - remove that entry or "
            "choose another lock path"
        )


class UnsafeDirectoryError(UnsafePathError):
    """An existing directory kitty was about to keep secrets in is group/world-writable or owned
    by another user: someone else could replace (or read) what kitty writes there."""

    def __init__(self, path: str | os.PathLike[str], mode: int, uid: int, euid: int):
        self.mode = mode
        self.uid = uid
        self.euid = euid
        problems = []
        if uid != euid:
            problems.append(f"is owned by uid {uid}, not by you (uid {euid})")
        if mode & 0o022:
            problems.append(f"is mode {mode:04o}, writable by group or others")
        super().__init__(path, " and ".join(problems) or f"is mode {mode:04o}")

    def _message(self) -> str:
        fix = f"chmod 700 {self.path}"
        if self.uid != self.euid:
            fix = f"chown {self.euid} {self.path} && {fix}"
        return (
            f"refusing to keep secrets in {self.path}: it {self.reason}; another user could "
            f"replace or read what kitty writes there - fix it with `{fix}` (as its owner or "
            "root) if it is yours, or point KITTY_HOME at a private directory"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.mode, self.uid, self.euid))


class InvalidFileError(KittyLockError, ValueError):
    """A file kitty reads is not what it must be: not a regular file (a FIFO, socket, device or
    symlink is reported, never opened for a blocking read), too large, not UTF-8, not JSON, or
    JSON nested too deeply. The file was left exactly as it is."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return f"{self.path} {self.reason}; it was left untouched"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class UnsupportedPlatformError(KittyLockError):
    """No usable OS lock primitive (neither ``fcntl.flock`` nor ``msvcrt.locking``)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)

    def __str__(self) -> str:
        return self.reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


class NetworkFilesystemWarning(UserWarning):
    """The lock file lives on a filesystem whose locks only exclude processes of this host."""
