"""``SessionStore``: the one session file, written atomically and privately (AUTH-04, -05, -07)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import time
from typing import Final

import kitty_daemon_identity
from kitty_filelock import (
    InvalidFileError,
    KittyLockError,
    fsync_dir,
    read_json_file,
    write_private_file,
)

from ._errors import CorruptSession, StoreWriteFailed, UnreadableSession
from ._home import default_home
from ._session import Session, session_from_json, session_to_json

SESSION_FILE_NAME: Final = "session.json"
TEMP_FILE_MAX_AGE_S: Final = 3600
# A session is a few hundred bytes; anything this large is not ours and is reported as corrupt
# instead of being loaded into memory.
MAX_SESSION_BYTES: Final = 1 << 20
# kitty-filelock's writer names its temp files `.<name>.<pid>.<hex>.tmp` (SPEC §0.3).
_TEMP_PREFIX: Final = f".{SESSION_FILE_NAME}."
_TEMP_SUFFIX: Final = ".tmp"


class SessionStore:
    """The persisted session in ``<root>/session.json`` (root defaults to ``<home>/auth``).

    The home is kitty's (``KITTY_HOME``), or an app's: ``SessionStore(profile=ACME)`` uses
    ``ACME.resolve_home() / "auth"`` (its ``ACME_HOME``), resolved once, here.

    Readers never lock: ``write`` replaces the file atomically, so a reader sees the old or the
    new file, never a mix. Only the refresh transaction and ``TokenManager`` write or delete.
    """

    __slots__ = ("_profile", "_root")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        profile: kitty_daemon_identity.AppProfile | None = None,
    ) -> None:
        if root is not None and profile is not None:
            raise ValueError("give SessionStore a root or a profile, not both")
        self._profile = profile
        if root is not None:
            self._root = pathlib.Path(root)
        else:
            self._root = default_home(profile) / "auth"

    @property
    def profile(self) -> kitty_daemon_identity.AppProfile | None:
        """The app whose home this store is in (None: a store made from a root)."""
        return self._profile

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

        A file that is there but not a session (a FIFO, socket or symlink, too large, not JSON,
        nested too deeply, wrong fields) raises ``CorruptSession``; one this user may not read
        (EACCES, or owned by another user) raises ``UnreadableSession``. Either way the file is
        left exactly as it is, and nothing ever waits on it (kitty-filelock's reader).
        """
        try:
            doc = read_json_file(self.path, max_bytes=MAX_SESSION_BYTES, owner_only=True)
        except FileNotFoundError:
            return None
        except InvalidFileError as exc:
            raise CorruptSession(self.path, f"file {exc.reason}") from None
        except PermissionError as exc:
            raise UnreadableSession(self.path, exc.strerror or "permission denied") from None
        return session_from_json(doc, str(self.path))

    def write(self, session: Session) -> None:
        """Atomically replace the file with ``session`` (kitty-filelock's private writer: 0700
        directories and a 0600 temp file whatever the umask, fsync, replace, directory fsync).

        An existing directory another user could write (or owns) is refused. On failure the
        temp file is removed, the previous file is intact, and ``StoreWriteFailed`` (carrying
        ``session``) is raised.
        """
        payload = json.dumps(session_to_json(session), indent=1).encode("utf-8") + b"\n"
        self._remove_old_temp_files()
        try:
            write_private_file(self.path, payload)
        except OSError as exc:
            # After the replace only the durability of the rename is in doubt (a failed
            # directory fsync): the new file is in place; report, do not undo.
            raise StoreWriteFailed(self.path, _describe(exc), session) from exc

    def delete(self) -> None:
        """Remove the session file (idempotent). Call sites: the reconciler and ``logout`` only."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return
        fsync_dir(self._root)

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
    if isinstance(exc, KittyLockError):
        return str(exc)  # a refusal that names the path, what is wrong and the fix
    name = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return f"{type(exc).__name__}: {name}"
