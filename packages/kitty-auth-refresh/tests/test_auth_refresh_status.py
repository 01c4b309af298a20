"""``auth_status`` reads disk on every call and never shows a token (AUTH-08)."""

from __future__ import annotations

import datetime as dt
import pathlib

from _authkit import T0, make_session
from kitty_auth_refresh import AuthState, SessionStore, auth_status


def test_states_follow_the_file(store: SessionStore) -> None:
    assert auth_status(store, now=T0).state is AuthState.NOT_AUTHENTICATED

    session = make_session(ttl_s=120, refresh_expires_at=T0 + dt.timedelta(hours=1))
    store.write(session)
    status = auth_status(store, now=T0)
    assert status.state is AuthState.AUTHENTICATED
    assert status.session_hash == session.session_hash
    assert len(status.session_hash or "") == 8
    assert (status.subject, status.email) == (session.subject, session.email)
    assert status.access_expires_in_s == 120
    assert status.refresh_expires_in_s == 3600
    assert status.path == str(store.path)
    assert session.access_token not in repr(status)
    assert session.refresh_token not in repr(status)

    # An expired access token is routine; only a known refresh expiry in the past is "expired".
    assert auth_status(store, now=T0 + dt.timedelta(minutes=30)).state is AuthState.AUTHENTICATED
    assert auth_status(store, now=T0 + dt.timedelta(hours=2)).state is AuthState.EXPIRED

    store.write(make_session())  # server-managed refresh lifetime
    assert auth_status(store, now=T0).refresh_expires_in_s is None

    store.path.write_text("{broken")
    status = auth_status(store, now=T0)
    assert status.state is AuthState.CORRUPT
    assert status.error is not None
    assert "JSON" in status.error
    assert store.path.read_text() == "{broken"


def test_default_store_and_clock(home: pathlib.Path) -> None:
    SessionStore().write(make_session(now=dt.datetime.now(dt.UTC), ttl_s=3600))
    status = auth_status()
    assert status.state == "authenticated"
    assert status.path == str(home / "auth" / "session.json")
    assert status.access_expires_in_s is not None
    assert 3500 < status.access_expires_in_s <= 3600
