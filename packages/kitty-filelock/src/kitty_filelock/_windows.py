"""Windows lock hooks: ``msvcrt.locking`` on ONE byte far beyond any record.

Windows byte-range locks are mandatory: locking offset 0 would make the record unreadable to
every other process while held. Locking the byte at ``WINDOWS_LOCK_OFFSET`` (2**30) leaves the
record readable (LCK-16); the file never grows that large, which Windows allows for locks.
"""

from __future__ import annotations

import errno
import os
from typing import Final

WINDOWS_LOCK_OFFSET: Final = 2**30
_CONTENTION_ERRNOS: Final = frozenset({errno.EACCES, errno.EDEADLK})


class MsvcrtBackend:  # pragma: no cover - exercised by the Windows CI leg only
    """``msvcrt.locking(fd, LK_NBLCK, 1)`` at ``WINDOWS_LOCK_OFFSET``."""

    name: Final = "msvcrt"

    @staticmethod
    def try_lock(fd: int, *, shared: bool = False) -> bool:
        import msvcrt

        del shared  # msvcrt has no shared locks; a probe takes the exclusive byte briefly
        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]  # Windows only
        except OSError as exc:
            if exc.errno in _CONTENTION_ERRNOS:
                return False
            raise
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True

    @staticmethod
    def unlock(fd: int) -> None:
        import msvcrt

        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined,unused-ignore]  # Windows only
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
