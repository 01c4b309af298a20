"""``SessionStore``: the one session file, written atomically and privately (AUTH-04, -05, -07)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import stat
import time
from typing import Final

from kitty_filelock import make_private_dirs

from ._errors import CorruptSession, StoreWriteFailed
from ._home import default_home
from ._session import Session, session_from_json, session_to_json

SESSION_FILE_NAME: Final = "session.json"
TEMP_FILE_MAX_AGE_S: Final = 3600
# A session is a few hundred bytes; anything this large is not ours and is reported as corrupt
# instead of being loaded into memory.
MAX_SESSION_BYTES: Final = 1 << 20
_TEMP_PREFIX: Final = f".{SESSION_FILE_NAME}."
_TEMP_SUFFIX: Final = ".tmp"


_READ_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a device or other special file"


def _fsync_dir(directory: pathlib.Path) -> None:
    """Make a rename/unlink durable. POSIX only; Windows cannot open directories."""
    if os.name == "nt":  # pragma: no cover - Windows only
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SessionStore:
    """The persisted session in ``<root>/session.json`` (root defaults to ``<home>/auth``).

    Readers never lock: ``write`` replaces the file atomically, so a reader sees the old or the
    new file, never a mix. Only the refresh transaction and ``TokenManager`` write or delete.
    """

    __slots__ = ("_root",)

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self._root = pathlib.Path(root) if root is not None else default_home() / "auth"

    @property
    def root(self) -> pathlib.Path:
        return self._root

    @property
    def path(self) -> pathlib.Path:
        return self._root / SESSION_FILE_NAME

    def __repr__(self) -> str:
        return f"SessionStore({str(self._root)!r})"

    def read(self) -> Session | None:
        """The persisted session; None only when the file does not exist.

        Anything unreadable raises ``CorruptSession`` and the file is left exactly as it is.
        """
        try:
            # O_NONBLOCK: a FIFO planted at the path must be reported, not wait for a writer.
            fd = os.open(self.path, _READ_FLAGS)
        except FileNotFoundError:
            return None
        except IsADirectoryError:  # pragma: no cover - POSIX opens a directory read-only
            raise CorruptSession(self.path, "the path is a directory, not a file") from None
        try:
            kind = _kind(os.fstat(fd).st_mode)
        except BaseException:
            os.close(fd)
            raise
        if kind is not None:
            os.close(fd)
            if kind == "a directory":
                raise CorruptSession(self.path, "the path is a directory, not a file")
            raise CorruptSession(self.path, f"the path is {kind}, not a regular file")
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_SESSION_BYTES + 1)
        if len(data) > MAX_SESSION_BYTES:
            raise CorruptSession(self.path, f"file is larger than {MAX_SESSION_BYTES} bytes")
        try:
            doc = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise CorruptSession(self.path, "file is not UTF-8 text") from None
        except RecursionError:
            raise CorruptSession(self.path, "file is JSON nested too deeply") from None
        except ValueError as exc:
            # The position only: json's message never quotes content, but be explicit about it.
            pos = getattr(exc, "pos", None)
            raise CorruptSession(self.path, f"file is not valid JSON (at byte {pos})") from None
        return session_from_json(doc, str(self.path))

    def write(self, session: Session) -> None:
        """Atomically replace the file with ``session`` (temp + fsync + replace + dir fsync).

        On failure the temp file is removed, the previous file is intact, and
        ``StoreWriteFailed`` (carrying ``session``) is raised.
        """
        payload = json.dumps(session_to_json(session), indent=1).encode("utf-8") + b"\n"
        try:
            make_private_dirs(self._root)  # 0700 whatever the umask (kitty-filelock's)
        except OSError as exc:
            raise StoreWriteFailed(self._root, _describe(exc), session) from exc
        self._remove_old_temp_files()
        temp = self._root / f"{_TEMP_PREFIX}{os.getpid()}.{secrets.token_hex(4)}{_TEMP_SUFFIX}"
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        flags |= getattr(os, "O_BINARY", 0)
        try:
            # Mode 0600 from creation: never a window in which the tokens are group-readable.
            fd = os.open(temp, flags, 0o600)
        except OSError as exc:
            raise StoreWriteFailed(self.path, _describe(exc), session) from exc
        try:
            try:
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise StoreWriteFailed(self.path, _describe(exc), session) from exc
        try:
            _fsync_dir(self._root)
        except OSError as exc:
            # The new file is in place and readable; only its durability across a power loss is
            # in doubt. Report, do not undo.
            raise StoreWriteFailed(self.path, _describe(exc), session) from exc

    def delete(self) -> None:
        """Remove the session file (idempotent). Call sites: the reconciler and ``logout`` only."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        _fsync_dir(self._root)

    def _remove_old_temp_files(self) -> None:
        """Temp files older than an hour were left by a crashed writer; a live writer is faster."""
        cutoff = time.time() - TEMP_FILE_MAX_AGE_S
        try:
            entries = list(os.scandir(self._root))
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if not (name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)


def _describe(exc: OSError) -> str:
    name = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return f"{type(exc).__name__}: {name}"
