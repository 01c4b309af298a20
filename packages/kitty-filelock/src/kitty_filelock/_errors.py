"""Errors raised by kitty-filelock.

```
KittyLockError(OSError)
├── LockTimeout(KittyLockError, TimeoutError)       path, holder, waited_s
├── LockReentryError(KittyLockError, RuntimeError)  path
├── LockNotOwnedError(KittyLockError, RuntimeError) path
├── UnsafeLockPathError(KittyLockError)             path, reason
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


class UnsafeLockPathError(KittyLockError):
    """The lock path is not a regular file kitty may write: a symlink, a hard link to another
    file, a FIFO/device/directory, or a file of another user. Nothing was written to it."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return (
            f"refusing to lock {self.path}: it {self.reason}; kitty writes its holder record "
            "into the lock file, so it only uses a regular file it owns - remove that entry or "
            "choose another lock path"
        )

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
