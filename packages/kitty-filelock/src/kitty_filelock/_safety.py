"""Which files kitty may write its holder record into (and truncate it out of).

The record is written into the lock file itself, so the lock path is a write target: a final
symlink (the CVE-2025-68146 class), a hard link to someone's settings file, a FIFO or device, or
another user's file planted at the path must never receive it. Opens never follow a final
symlink; every descriptor is checked with ``fstat`` before the first byte is written. And
every directory kitty creates is private (``make_private_dirs``), the one implementation the
other kitty packages use too.
"""

from __future__ import annotations

import os
import stat
from typing import Final

from ._errors import UnsafeDirectoryError

#: Every directory kitty creates: private to its owner, whatever the umask.
PRIVATE_DIR_MODE: Final = 0o700
#: Added to every open of a lock file: never follow a final symlink; a FIFO must not block.
NOFOLLOW_FLAGS: Final = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_REPARSE_POINT: Final = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT (Windows symlinks, junctions)
# Looked up once: unsafe_reason runs on every acquisition. Windows has no uids (and no geteuid).
_GETEUID: Final = getattr(os, "geteuid", None)


def unsafe_reason(st: os.stat_result) -> str | None:
    """Why the file behind a descriptor must not be written (None: it may), as the tail of
    "refusing to lock <path>: it ..."."""
    if _GETEUID is None and getattr(st, "st_file_attributes", 0) & _REPARSE_POINT:
        return "is a reparse point (a symbolic link or junction)"  # pragma: no cover - Windows
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_nlink > 1:
        return f"is a hard link to a file with {st.st_nlink} names"
    if _GETEUID is not None and st.st_uid != _GETEUID():
        return f"belongs to uid {st.st_uid}, not to this process's uid {_GETEUID()}"
    return None


def make_private_dirs(directory: str | os.PathLike[str]) -> None:
    """Create ``directory`` and every missing parent with mode exactly 0700, whatever the umask
    (chmod right after each mkdir; the process umask is never changed). Directories that already
    exist are left as they are (the user may have chosen their modes). Safe against a concurrent
    creator.

    ``os.makedirs`` applies ``mode`` to the leaf only and the umask narrows (or, with umask 000,
    not at all) every mode: a home created 0777 lets another user plant files in it.
    """
    missing: list[str] = []
    current = os.path.abspath(os.fspath(directory))
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:  # pragma: no cover - the filesystem root always exists
            break
        current = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, PRIVATE_DIR_MODE)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
            continue
        os.chmod(d, PRIVATE_DIR_MODE)


def require_private_dir(directory: str | os.PathLike[str]) -> None:
    """Raise ``UnsafeDirectoryError`` unless ``directory`` (followed if it is a link: that is
    where files would land) is owned by this process's uid and not writable by group or others.

    Called before kitty keeps a secret or a state record in a directory it did not necessarily
    create: a directory another user can write lets them swap or delete what is in it, and one
    they own is theirs to read. Never chmod-s: the user decides how to fix it. A no-op where the
    OS has no uids (Windows: the profile's ACLs protect it).
    """
    if _GETEUID is None:  # pragma: no cover - Windows
        return
    st = os.stat(directory)
    euid = _GETEUID()
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != euid or mode & 0o022:
        raise UnsafeDirectoryError(directory, mode, st.st_uid, euid)
