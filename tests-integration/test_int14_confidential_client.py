"""INT-14 (issue 14): a confidential client against the Authlib server.

The server registers ``kitty-confidential`` with a secret that needs form-urlencoding; kitty must
refresh with ``client_secret_basic`` (RFC 6749 §2.3.1) and ``client_secret_post``, and a wrong
secret must surface as ``ClientConfigRejected`` without touching the session.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from _auth_fixtures import PASSWORD, USERNAME, OAuthServer
from _oauth_server import CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_SECRET
from kitty_auth_refresh import ClientConfigRejected, Session, TokenEndpoint

pytestmark = pytest.mark.timeout(60)


def _login(oauth: OAuthServer) -> Session:
    response = oauth.client.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": USERNAME,
            "password": PASSWORD,
            "client_id": CONFIDENTIAL_CLIENT_ID,
            "client_secret": CONFIDENTIAL_SECRET,
            "scope": "openid offline_access",
        },
    )
    response.raise_for_status()
    token: dict[str, Any] = response.json()
    now = dt.datetime.now(dt.UTC)
    return Session(
        session_id=token["session_id"],
        access_token=token["access_token"],
        refresh_token=token["refresh_token"],
        access_expires_at=now + dt.timedelta(seconds=token["expires_in"]),
        issued_at=now,
    )


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_confidential_client_refreshes(oauth: OAuthServer, method: str) -> None:
    session = _login(oauth)
    with TokenEndpoint(
        oauth.token_url,
        CONFIDENTIAL_CLIENT_ID,
        client_secret=CONFIDENTIAL_SECRET,
        auth_method=method,
    ) as endpoint:
        new = endpoint.refresh(session)
    assert new.refresh_token != session.refresh_token
    assert new.session_id == session.session_id
    assert oauth.me(new.access_token) == 200


def test_wrong_secret_is_a_client_rejection(oauth: OAuthServer) -> None:
    session = _login(oauth)
    with (
        TokenEndpoint(
            oauth.token_url,
            CONFIDENTIAL_CLIENT_ID,
            client_secret="not-the-secret",
            auth_method="client_secret_basic",
        ) as endpoint,
        pytest.raises(ClientConfigRejected) as info,
    ):
        endpoint.refresh(session)
    assert info.value.error == "invalid_client"
    assert info.value.status in (400, 401)
    assert "not-the-secret" not in str(info.value)
