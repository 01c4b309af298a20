"""Reading kitty's small JSON files without ever blocking, following a link or crashing.

One reader for the session (kitty-auth-refresh), the daemon state records
(kitty-daemon-identity) and, for the decoding step, the lock record: a FIFO, socket or device at
the path is reported, never opened for a blocking read; a symlink is never followed (the OS's
ELOOP propagates: the path is unreadable, its content unknown); a file past
the size cap is not loaded; undecodable or deeply nested JSON is an ``InvalidFileError``, never
a ``RecursionError``. What "invalid" means to a caller (corrupt session, absent record) is the
caller's decision.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from typing import Any, Final

from ._errors import InvalidFileError

#: O_NONBLOCK: opening a FIFO for reading would wait for a writer; O_NOFOLLOW: a symlink planted
#: at a kitty path is not what kitty wrote there (every kitty writer replaces it).
_READ_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
)


_GETEUID: Final = getattr(os, "geteuid", None)  # Windows has no uids (its ACLs decide)


class JsonDecodeProblem(ValueError):
    """Why bytes are not a JSON document (``str()`` is a phrase: "is not valid JSON ...")."""


def decode_json(raw: bytes, loads: Callable[[str], Any] = json.loads) -> Any:
    """Decode UTF-8 JSON bytes with ``loads``; ``JsonDecodeProblem`` for anything else.

    A document nested past the interpreter's recursion limit is a problem like any other, and
    so is every ``ValueError`` ``loads`` raises (a strict decoder's duplicate keys, NaN...).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonDecodeProblem("is not UTF-8 text") from None
    try:
        return loads(text)
    except RecursionError:
        raise JsonDecodeProblem("is JSON nested too deeply") from None
    except ValueError as exc:
        # The position only: never quote content (it may be a token).
        pos = getattr(exc, "pos", None)
        where = f" (at byte {pos})" if pos is not None else ""
        raise JsonDecodeProblem(f"is not valid JSON{where}") from exc


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a device or other special file"


def read_small_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    owner_only: bool = False,
    private_only: bool = False,
) -> bytes:
    """The bytes of the regular file at ``path`` (at most ``max_bytes``).

    Raises ``FileNotFoundError`` when nothing is there; ``InvalidFileError`` (``path``,
    ``reason``) when the entry is a FIFO, socket, device or directory or is larger than
    ``max_bytes``; any other ``OSError`` propagates unchanged for the caller to tell
    "unreadable" from "invalid": EACCES, ENOTDIR, and ELOOP for a symlink, which is never
    followed (a link kitty did not write may point anywhere). With ``owner_only``, a file owned
    by another uid is a ``PermissionError`` too (a secret someone else wrote is not this
    user's); with ``private_only``, so is one group or others may read (a key others can read
    is no secret). Never blocks and never modifies the file.
    """
    target = os.fspath(path)
    try:
        fd = os.open(target, _READ_FLAGS)
    except IsADirectoryError:  # pragma: no cover - POSIX opens a directory read-only
        raise InvalidFileError(target, "is a directory, not a regular file") from None
    except OSError:
        # A symlink is refused by the OS itself (O_NOFOLLOW: ELOOP on Linux) and that error
        # propagates: the path cannot be read, its content was never looked at. A socket
        # (ENXIO) is a kind of entry kitty never writes: say so.
        try:
            mode = os.lstat(target).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise InvalidFileError(target, f"is {_kind(mode)}, not a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidFileError(target, f"is {_kind(st.st_mode)}, not a regular file")
        if _GETEUID is not None:  # Windows: no uids, no mode bits that mean this
            if owner_only and st.st_uid != _GETEUID():
                owner = f"is owned by uid {st.st_uid}, not by you (uid {_GETEUID()})"
                raise PermissionError(errno.EACCES, owner, target)
            if private_only and st.st_mode & 0o077:
                shared = f"is mode {stat.S_IMODE(st.st_mode):04o}, open to group or others"
                raise PermissionError(errno.EACCES, shared, target)
        chunks: list[bytes] = []
        size = 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > max_bytes:
        raise InvalidFileError(target, f"is larger than {max_bytes} bytes")
    return b"".join(chunks)


def read_json_file(
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    loads: Callable[[str], Any] = json.loads,
    owner_only: bool = False,
) -> Any:
    """The JSON document in the regular file at ``path``, decoded with ``loads``.

    ``read_small_file``'s rules and errors, plus ``InvalidFileError`` when the content is not
    UTF-8 JSON (deep nesting included) or ``loads`` raises ``ValueError``.
    """
    raw = read_small_file(path, max_bytes=max_bytes, owner_only=owner_only)
    try:
        return decode_json(raw, loads)
    except JsonDecodeProblem as exc:
        raise InvalidFileError(os.fspath(path), str(exc)) from None
