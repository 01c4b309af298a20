"""session_from_token_response: a first login's token response read by the refresh path's rules.

Every table row goes through both paths — ``TokenEndpoint.refresh`` and the login function —
and must give the same fields or the same error: one reading of a token response (issue 13.4).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import httpx
import pytest

from _authkit import T0, TOKEN_URL, ApiServer, FakeClock, make_session, marker
from kitty_auth_refresh import (
    RefreshProtocolError,
    Session,
    SessionStore,
    SyncTokenManager,
    TokenEndpoint,
    session_from_token_response,
)

FIELDS = (
    "session_id",
    "access_token",
    "refresh_token",
    "access_expires_at",
    "issued_at",
    "refresh_expires_at",
    "scope",
    "token_type",
    "subject",
    "email",
    "id_token",
)


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": marker("acc"),
        "refresh_token": marker("ref"),
        "expires_in": 3600,
        "session_id": "sess-login",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


VALID = {
    "minimal": _body(),
    "everything": _body(
        scope="openid offline_access",
        token_type="bearer",
        subject="user-9",
        email="u@example.com",
        id_token="h.p.s",
        refresh_token_expires_in=86400,
    ),
    "refresh expiry as ISO": _body(refresh_token_expires_at="2030-02-01T00:00:00Z"),
    "refresh expiry as epoch": _body(refresh_token_expires_at=1900000000),
    "fractional lifetime": _body(expires_in=59.5),
    "no expires_in": _body(expires_in=None),
    "empty strings are absent": _body(scope="", token_type=""),
}
INVALID = {
    "no access token": _body(access_token=None),
    "access token not a string": _body(access_token=42),
    "expires_in a string": _body(expires_in="3600"),
    "expires_in a bool": _body(expires_in=True),
    "bad ISO refresh expiry": _body(refresh_token_expires_at="next tuesday"),
    "refresh expiry out of range": _body(refresh_token_expires_at=1e300),
}


def refreshed(body: dict[str, Any], clock: FakeClock) -> Session:
    """What the refresh path makes of ``body`` (sent at the fake clock's now)."""
    old = make_session(session_id="sess-old", subject=None, email=None)  # nothing to keep
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    with TokenEndpoint(TOKEN_URL, "kitty-cli", transport=transport, now=lambda: clock.wall) as e:
        return e.refresh(old)


@pytest.mark.parametrize("name", sorted(VALID))
def test_login_and_refresh_read_a_response_the_same_way(name: str, fake_clock: FakeClock) -> None:
    body = VALID[name]
    login = session_from_token_response(body, clock=fake_clock.clock())
    refresh = refreshed(body, fake_clock)
    for field in FIELDS:
        assert getattr(login, field) == getattr(refresh, field), field
    assert login.issued_at == T0
    lifetime = body.get("expires_in", 300)
    assert login.access_expires_at == T0 + dt.timedelta(seconds=lifetime - 1)  # the allowance


@pytest.mark.parametrize("name", sorted(INVALID))
def test_login_and_refresh_refuse_a_response_with_the_same_error(
    name: str, fake_clock: FakeClock
) -> None:
    body = INVALID[name]
    with pytest.raises(RefreshProtocolError) as login:
        session_from_token_response(body, clock=fake_clock.clock())
    with pytest.raises(RefreshProtocolError) as refresh:
        refreshed(body, fake_clock)
    assert str(login.value) == str(refresh.value)
    assert login.value.status == 200
    for value in body.values():
        if isinstance(value, str) and "MARK" in value:
            assert value not in str(login.value)


def test_a_login_without_a_refresh_token_is_refused() -> None:
    body = _body(refresh_token=None)
    with pytest.raises(RefreshProtocolError, match="no refresh_token: request offline access"):
        session_from_token_response(body)


def test_a_login_without_a_session_id_gets_a_fresh_random_one(fake_clock: FakeClock) -> None:
    body = _body(session_id=None)
    first = session_from_token_response(body, clock=fake_clock.clock())
    second = session_from_token_response(body, clock=fake_clock.clock())
    assert first.session_id != second.session_id
    assert len(first.session_id) >= 16
    assert first.extra == {}  # unknown response fields are not session fields


def test_sent_at_dates_the_expiry(fake_clock: FakeClock) -> None:
    sent = T0 - dt.timedelta(seconds=90)
    session = session_from_token_response(_body(), sent_at=sent, clock=fake_clock.clock())
    assert (session.issued_at, session.access_expires_at) == (
        sent,
        sent + dt.timedelta(seconds=3599),
    )


def test_a_missing_lifetime_warns_once_and_assumes_five_minutes(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    caplog.set_level(logging.DEBUG)
    body = _body(expires_in=None)
    session = session_from_token_response(body, clock=fake_clock.clock())
    assert session.access_ttl_s(T0) == 299
    assert [r.getMessage() for r in caplog.records] == [
        "token response has no expires_in; assuming 300 s"
    ]
    assert body["access_token"] not in caplog.text


def test_a_real_login_response_becomes_a_stored_session_that_refreshes(
    api: ApiServer, store: SessionStore, fake_clock: FakeClock
) -> None:
    with httpx.Client(trust_env=False) as http:
        response = http.post(api.token_url, data={"grant_type": "authorization_code", "code": "c"})
    session = session_from_token_response(response, clock=fake_clock.clock())
    # Dated when the request left: the response's elapsed time before "now".
    assert session.issued_at == T0 - response.elapsed
    assert session.scope == "openid offline_access"
    assert [session.access_token, session.refresh_token] == api.issued
    with TokenEndpoint(api.token_url, "kitty-cli", now=lambda: fake_clock.wall) as endpoint:
        manager = SyncTokenManager(store, endpoint, clock=fake_clock.clock())
        manager.save_login(session)  # the store write, under the refresh lock
        assert store.read() == session
        fake_clock.advance(3600)
        assert manager.get_access_token() == api.issued[2]  # its refresh token works
    assert api.refreshes == [session.refresh_token]


def test_an_error_response_is_refused_without_echoing_the_body() -> None:
    leaked = marker("acc")
    response = httpx.Response(400, json={"error": "authorization_pending"})
    with pytest.raises(RefreshProtocolError, match="authorization_pending") as info:
        session_from_token_response(response)
    assert info.value.status == 400
    odd = httpx.Response(400, json={"error": f"bad {leaked}"})
    with pytest.raises(RefreshProtocolError, match="not a success") as info:
        session_from_token_response(odd)
    assert leaked not in str(info.value)
    with pytest.raises(RefreshProtocolError, match="not a success"):
        session_from_token_response(httpx.Response(502, text="<html>bad gateway</html>"))


def test_a_200_that_is_not_a_json_object_is_refused(fake_clock: FakeClock) -> None:
    for response in (httpx.Response(200, text="not json"), httpx.Response(200, json=[1])):
        with pytest.raises(RefreshProtocolError, match="not a JSON object"):
            session_from_token_response(response, clock=fake_clock.clock())
    built = httpx.Response(200, json=_body())  # by hand: no elapsed, dated now
    assert session_from_token_response(built, clock=fake_clock.clock()).issued_at == T0


def test_a_refresh_still_keeps_what_the_response_omits(fake_clock: FakeClock) -> None:
    """The refresh side of the shared rules: omitted fields keep the old session's values."""
    old = dataclasses.replace(make_session(scope="s1"), extra={"app_field": 1})
    body = {"access_token": marker("acc"), "expires_in": 60}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    with TokenEndpoint(
        TOKEN_URL, "kitty-cli", transport=transport, now=lambda: fake_clock.wall
    ) as e:
        new = e.refresh(old)
    assert (new.refresh_token, new.scope, dict(new.extra)) == (
        old.refresh_token,
        "s1",
        {"app_field": 1},
    )
