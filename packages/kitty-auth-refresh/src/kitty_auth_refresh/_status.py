"""``auth_status``: what is on disk right now, for humans and the doctor (AUTH-08).

Reads the file on every call: no cache, no network, no lock.
"""

from __future__ import annotations

import datetime as dt
import enum

from kitty_filelock import frozen_dataclass

from ._errors import CorruptSession, UnreadableSession
from ._session import as_utc, utc_now
from ._store import SessionStore


class AuthState(enum.StrEnum):
    AUTHENTICATED = "authenticated"
    NOT_AUTHENTICATED = "not_authenticated"
    EXPIRED = "expired"
    CORRUPT = "corrupt"
    #: The file is there but may not be read (EACCES, another user's): not corrupt (issue 12).
    UNREADABLE = "unreadable"


@frozen_dataclass
class AuthStatus:
    """A token-free summary of the persisted session."""

    state: AuthState
    path: str
    session_hash: str | None = None
    subject: str | None = None
    email: str | None = None
    access_expires_in_s: float | None = None
    refresh_expires_in_s: float | None = None  # None: server-managed (or no session)
    error: str | None = None
    name: str | None = None  # from the id_token: UNVERIFIED, display only


def auth_status(store: SessionStore | None = None, *, now: dt.datetime | None = None) -> AuthStatus:
    """The state of the persisted session right now; never raises for what is on disk.

    ``corrupt``: the file is there but is not a session (``error`` says why); ``unreadable``: it
    is there but this user may not read it (EACCES, another user's file; ``error`` says which).
    """
    store = store if store is not None else SessionStore()
    at = as_utc(now) if now is not None else utc_now()
    path = str(store.path)
    try:
        session = store.read()
    except CorruptSession as exc:
        return AuthStatus(AuthState.CORRUPT, path, error=exc.reason)
    except UnreadableSession as exc:
        return AuthStatus(AuthState.UNREADABLE, path, error=exc.reason)
    except OSError as exc:
        # ELOOP, ENOTDIR, EIO on the way to the file: still a state to report, not a crash.
        return AuthStatus(AuthState.UNREADABLE, path, error=exc.strerror or type(exc).__name__)
    if session is None:
        return AuthStatus(AuthState.NOT_AUTHENTICATED, path)
    refresh_in = (
        (session.refresh_expires_at - at).total_seconds() if session.refresh_expires_at else None
    )
    # Only a known, passed refresh expiry is "expired"; an expired access token is routine.
    state = (
        AuthState.EXPIRED if refresh_in is not None and refresh_in <= 0 else AuthState.AUTHENTICATED
    )
    claims = session.unverified_claims  # display only: NOT verified
    return AuthStatus(
        state,
        path,
        session_hash=session.session_hash,
        subject=session.subject or (claims.sub if claims else None),
        email=session.email or (claims.email if claims else None),
        name=claims.name if claims else None,
        access_expires_in_s=session.access_ttl_s(at),
        refresh_expires_in_s=refresh_in,
    )
