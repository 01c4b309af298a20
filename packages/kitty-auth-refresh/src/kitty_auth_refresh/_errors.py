"""Errors raised by kitty-auth-refresh.

Tree (leaves also subclass the builtin they resemble)::

    KittyAuthError(Exception)
    ├── ConfigError(KittyAuthError, ValueError)            variable, value
    ├── CorruptSession(KittyAuthError, ValueError)         path, reason
    ├── UnreadableSession(KittyAuthError, PermissionError) path, reason
    ├── NotAuthenticated(KittyAuthError)                   path, login_command
    ├── ReloginRequired(KittyAuthError)                    cause, login_command, path
    ├── RefreshRejected(KittyAuthError)                    kind, description
    ├── RefreshReplay(KittyAuthError)                      retry_after
    ├── ClientConfigRejected(KittyAuthError)               status, error, description
    ├── RefreshProtocolError(KittyAuthError)               status, description
    ├── TransientRefreshError(KittyAuthError, ConnectionError)  kind, status
    │   └── RefreshLockBusy(TransientRefreshError)         kind: lock_busy|hold_budget|replay
    ├── StoreWriteFailed(KittyAuthError, OSError)          path, reason, session (memory only)
    └── RequestNotReplayable(KittyAuthError, RuntimeError) method, status

No message, ``repr`` or pickled state contains a token: server text is scrubbed before it is
stored (see ``_endpoint``), and ``StoreWriteFailed.session`` is deliberately dropped when pickled
because it holds the freshly rotated tokens.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._session import Session

LOGIN_COMMAND_ENV: Final = "KITTY_LOGIN_COMMAND"
FALLBACK_LOGIN_TEXT: Final = "log in again with your application"

CAUSE_TEXTS: Final[dict[str, str]] = {
    "invalid_grant": "the server rejected the refresh token (expired or revoked)",
    "session_invalid": "the server ended the session",
    "session_removed": "the saved session was removed by another process (logout)",
    "storage_corrupt": "the saved session file {path} is unreadable",
}


def _with_recovery(first: str, login_command: str | None) -> str:
    """``first`` plus the recovery step (AUTH-33): the explicit command, else
    ``$KITTY_LOGIN_COMMAND`` (read now, not at import), else the generic sentence ending."""
    command = login_command or os.environ.get(LOGIN_COMMAND_ENV, "").strip()
    if command:
        return f"{first}. Run `{command}` to sign in again."
    return f"{first}: {FALLBACK_LOGIN_TEXT}."


class KittyAuthError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(KittyAuthError, ValueError):
    """An environment variable holds a value kitty cannot use (e.g. a relative KITTY_HOME)."""

    def __init__(self, variable: str, value: str, fix: str) -> None:
        self.variable = variable
        self.value = value
        self.fix = fix
        super().__init__(variable, value, fix)

    def __str__(self) -> str:
        return f"{self.variable}={self.value!r} is not usable: {self.fix}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.variable, self.value, self.fix))


class CorruptSession(KittyAuthError, ValueError):
    """The session file exists but cannot be read as a session. It is never deleted by a refresh."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return (
            f"the saved session file {self.path} is unreadable ({self.reason}); "
            "it was left untouched: sign in again to replace it, or restore it from a backup"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class UnreadableSession(KittyAuthError, PermissionError):
    """The session file exists but this user may not read it: EACCES (e.g. written by
    ``sudo <app> login``) or owned by another user. Not corrupt: its content was never looked
    at, and it is never deleted or renamed by kitty."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        # errno/strerror/filename as the builtin would have them, so `except OSError` callers
        # (and `exc.strerror` readers) see what they always saw.
        super().__init__(errno.EACCES, reason, self.path)

    def __str__(self) -> str:
        return (
            f"the saved session file {self.path} cannot be read ({self.reason}); it was left "
            f"untouched: make it yours and private with `chown $(id -u) {self.path} && "
            f"chmod 600 {self.path}` (as root if needed), or sign in again to replace it"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class NotAuthenticated(KittyAuthError):
    """There is no saved session at all: the user has never signed in (or logged out)."""

    def __init__(self, path: str | None = None, login_command: str | None = None) -> None:
        self.path = path
        self.login_command = login_command
        super().__init__(path, login_command)

    def __str__(self) -> str:
        where = f" (no session file at {self.path})" if self.path else ""
        return _with_recovery(f"You are not signed in{where}", self.login_command)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.login_command))


class ReloginRequired(KittyAuthError):
    """The session legitimately ended (AUTH-01); the message says why and what to run."""

    def __init__(
        self, cause: str, login_command: str | None = None, path: str | None = None
    ) -> None:
        self.cause = str(cause)
        self.login_command = login_command
        self.path = path
        super().__init__(self.cause, login_command, path)

    def __str__(self) -> str:
        template = CAUSE_TEXTS.get(self.cause, "the session ended ({cause})")
        text = template.format(path=self.path or "<unknown>", cause=self.cause)
        return _with_recovery(f"Your session has ended: {text}", self.login_command)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.cause, self.login_command, self.path))


class RefreshRejected(KittyAuthError):
    """The token endpoint rejected the refresh token (``invalid_grant`` or ``session_invalid``)."""

    def __init__(self, kind: str, description: str | None = None, status: int = 400) -> None:
        self.kind = kind
        self.description = description
        self.status = status
        super().__init__(kind, description, status)

    def __str__(self) -> str:
        extra = f": {self.description}" if self.description else ""
        return f"token endpoint rejected the refresh (HTTP {self.status}, {self.kind}){extra}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.description, self.status))


class RefreshReplay(KittyAuthError):
    """409 ``refresh_replay_benign_retry``: the presented token was just spent by a peer."""

    def __init__(self, retry_after: int = 0) -> None:
        self.retry_after = retry_after
        super().__init__(retry_after)

    def __str__(self) -> str:
        return (
            "token endpoint reports a benign replay of a just-rotated refresh token "
            f"(retry_after={self.retry_after}s)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.retry_after,))


class ClientConfigRejected(KittyAuthError):
    """The server rejected the CLIENT (``invalid_client``, ``unauthorized_client``,
    ``unsupported_grant_type``, ``invalid_scope``), not the refresh token: a configuration
    problem (client id, secret, auth method, scope). The session is kept; logging in again would
    not help."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        self.status = status
        self.error = error
        self.description = description
        super().__init__(status, error, description)

    @property
    def kind(self) -> str:
        return self.error

    def __str__(self) -> str:
        extra = f": {self.description}" if self.description else ""
        return (
            f"the token endpoint rejected the client configuration (HTTP {self.status}, "
            f"{self.error}){extra}; check the client id, secret, auth method and scope. "
            "The session is kept"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.error, self.description))


class RefreshProtocolError(KittyAuthError):
    """The endpoint answered neither a success nor a known error. Non-destructive."""

    kind: Final = "protocol"

    def __init__(self, status: int | None, description: str | None = None) -> None:
        self.status = status
        self.description = description
        super().__init__(status, description)

    def __str__(self) -> str:
        extra = f": {self.description}" if self.description else ""
        return f"unexpected answer from the token endpoint (HTTP {self.status}){extra}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.description))


class TransientRefreshError(KittyAuthError, ConnectionError):
    """A retryable failure (5xx, 408, 429, transport, timeout). The session is always kept."""

    def __init__(
        self, kind: str, status: int | None = None, description: str | None = None
    ) -> None:
        self.kind = kind
        self.status = status
        self.description = description
        super().__init__(kind, status, description)

    def __str__(self) -> str:
        status = f", HTTP {self.status}" if self.status is not None else ""
        extra = f": {self.description}" if self.description else ""
        return (
            f"token refresh failed temporarily ({self.kind}{status}){extra}; "
            "the session is kept, try again shortly"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.kind, self.status, self.description))


class RefreshLockBusy(TransientRefreshError):
    """No refresh could run: lock busy, hold budget spent, or a replay with no newer material."""

    def __init__(
        self, kind: str = "lock_busy", status: int | None = None, description: str | None = None
    ) -> None:
        super().__init__(kind, status, description)

    def __str__(self) -> str:
        extra = f": {self.description}" if self.description else ""
        return (
            f"token refresh could not run now ({self.kind}){extra}; "
            "another process is refreshing: the session is kept, try again shortly"
        )


class StoreWriteFailed(KittyAuthError, OSError):
    """Persisting a session failed; the previous file is intact.

    ``session`` carries the session that could not be written (after a refresh: the rotated
    tokens, which are now the only valid ones) so the caller can keep working from memory. It is
    not part of the pickled state.
    """

    def __init__(
        self, path: str | os.PathLike[str], reason: str, session: Session | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        self.session = session
        super().__init__(self.path, reason)

    def __str__(self) -> str:
        return (
            f"could not write the session file {self.path} ({self.reason}); the previous file is "
            "intact: free disk space or fix the directory permissions"
        )

    def __repr__(self) -> str:
        return f"StoreWriteFailed(path={self.path!r}, reason={self.reason!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.reason))


class RequestNotReplayable(KittyAuthError, RuntimeError):
    """``TokenAuth`` got a 401 for a request whose body was streamed (an iterator, a generator,
    a file): it refreshed the token but cannot send that body a second time."""

    def __init__(self, method: str, status: int = 401) -> None:
        self.method = method
        self.status = status
        super().__init__(method, status)

    def __str__(self) -> str:
        return (
            f"the server refused the access token (HTTP {self.status}) for a {self.method} "
            "request whose body was streamed, so it cannot be sent again; the token has been "
            "refreshed: send the request again, or pass the body as bytes (content=, data=, "
            "json=) to have it retried automatically"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.method, self.status))
