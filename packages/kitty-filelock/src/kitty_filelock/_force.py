"""``force_release``: clear a STALE record. A live holder is never ripped out (LCK-14).

There is nothing to "release" after a crash - the kernel already freed the lock; only the dead
holder's record lingers and confuses humans. This clears it, and only when every check agrees it
is stale: old enough, no process holds the OS lock, and unchanged between the first look and the
moment we hold the lock ourselves (TOCTOU: another process may have acquired, written a fresh
record and released in between).
"""

from __future__ import annotations

import errno
import os
from typing import Final

from ._errors import UnsafeLockPathError
from ._platform import available_modes, backend
from ._probe import probe as probe  # re-exported: the seam TOCTOU tests patch
from ._record import parse_record, read_fd, read_lock_record
from ._registry import Held, file_key, with_own_fd_or_holder
from ._safety import NOFOLLOW_FLAGS, unsafe_reason

_RW_FLAGS: Final = (
    os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0) | NOFOLLOW_FLAGS
)


def _check_age(older_than: object) -> float:
    if isinstance(older_than, bool) or not isinstance(older_than, int | float):
        raise ValueError(f"older_than must be a number of seconds, got {older_than!r}")
    if not older_than >= 0:
        raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")
    return float(older_than)


def force_release(path: str | os.PathLike[str], older_than: float = 60.0) -> bool:
    """Truncate a stale record older than ``older_than`` seconds; True if one was cleared.

    False when there is no record, it is too fresh, any process (this one included) holds the
    lock, or the record changed under us. Never unlinks; genuine OS errors propagate.
    """
    limit = _check_age(older_than)
    path = os.path.abspath(os.fspath(path))
    first = read_lock_record(path)
    if first is None or first.age_s() <= limit:
        return False
    if probe(path).held is not False:
        return False  # held (or undeterminable): a live holder is never touched
    try:
        key = file_key(os.stat(path))
    except FileNotFoundError:
        return False

    def ours(_held: Held) -> bool:
        return False  # this process holds it now: by definition not stale

    def clear() -> bool:
        try:
            fd = os.open(path, _RW_FLAGS)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeLockPathError(path, "is a symbolic link") from None
            raise
        taken: list[str] = []
        try:
            unsafe = unsafe_reason(os.fstat(fd))
            if unsafe is not None:
                raise UnsafeLockPathError(path, unsafe)
            # Holders may use either primitive (they do not exclude each other on Linux):
            # hold them all before touching the record.
            for mode in available_modes():
                if not backend(mode).try_lock(fd):
                    return False
                taken.append(mode)
            again = parse_record(read_fd(fd))
            if again is None or again != first or again.age_s() <= limit:
                return False
            os.ftruncate(fd, 0)
            return True
        finally:
            try:
                for mode in reversed(taken):
                    backend(mode).unlock(fd)
            finally:
                os.close(fd)

    return bool(with_own_fd_or_holder(key, clear, ours))
