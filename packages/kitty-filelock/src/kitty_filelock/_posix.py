"""POSIX lock hooks: BSD ``flock`` (whole open file description) and fcntl byte-range locks.

Only the two hooks differ per platform; the algorithm around them lives in ``_lock.py``.
Contention is recognised ONLY here, on the lock call: the same errno from ``open()`` is a genuine
error and must propagate.
"""

from __future__ import annotations

import errno
import fcntl
from collections.abc import Callable
from typing import Final

# fcntl's F_SETLK reports a conflicting lock as EACCES or EAGAIN depending on the system.
_CONTENTION_ERRNOS: Final = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})
_EXCLUSIVE_NB: Final = fcntl.LOCK_EX | fcntl.LOCK_NB
_SHARED_NB: Final = fcntl.LOCK_SH | fcntl.LOCK_NB


def _try_lock(call: Callable[[int, int], object], fd: int, shared: bool) -> bool:
    """One non-blocking attempt; False only for contention, anything else is a real error."""
    try:
        call(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _CONTENTION_ERRNOS:
            return False
        raise
    return True


class FlockBackend:
    """``flock(2)``: the lock belongs to the open file description, not the process."""

    name: Final = "flock"

    @staticmethod
    def try_lock(fd: int, *, shared: bool = False) -> bool:
        # Written out rather than through _try_lock: this is the uncontended path's one
        # lock call, and the indirection is a measurable share of it.
        try:
            fcntl.flock(fd, _SHARED_NB if shared else _EXCLUSIVE_NB)
        except OSError as exc:
            if exc.errno in _CONTENTION_ERRNOS:
                return False
            raise
        return True

    @staticmethod
    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FcntlBackend:
    """fcntl ``F_SETLK`` on the whole file: what NFS propagates to the server.

    These locks belong to the PROCESS: closing ANY descriptor of the file drops them, which is why
    the in-process registry (``_registry.py``) must stop a second descriptor being opened and
    closed while this process holds the lock.
    """

    name: Final = "fcntl"

    @staticmethod
    def try_lock(fd: int, *, shared: bool = False) -> bool:
        return _try_lock(fcntl.lockf, fd, shared)

    @staticmethod
    def unlock(fd: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_UN)
