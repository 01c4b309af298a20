"""Which files kitty may write its holder record into (and truncate it out of).

The record is written into the lock file itself, so the lock path is a write target: a final
symlink (the CVE-2025-68146 class), a hard link to someone's settings file, a FIFO or device, or
another user's file planted at the path must never receive it. Opens never follow a final
symlink; every descriptor is checked with ``fstat`` before the first byte is written.
"""

from __future__ import annotations

import os
import stat
from typing import Final

#: Added to every open of a lock file: never follow a final symlink; a FIFO must not block.
NOFOLLOW_FLAGS: Final = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_REPARSE_POINT: Final = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT (Windows symlinks, junctions)


def unsafe_reason(st: os.stat_result) -> str | None:
    """Why the file behind a descriptor must not be written (None: it may), as the tail of
    "refusing to lock <path>: it ..."."""
    if getattr(st, "st_file_attributes", 0) & _REPARSE_POINT:  # pragma: no cover - Windows
        return "is a reparse point (a symbolic link or junction)"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_nlink > 1:
        return f"is a hard link to a file with {st.st_nlink} names"
    geteuid = getattr(os, "geteuid", None)
    if geteuid is not None and st.st_uid != geteuid():
        return f"belongs to uid {st.st_uid}, not to this process's uid {geteuid()}"
    return None
