"""Issue 13.4 against the Authlib server: an app's own login response becomes the shared session
(``session_from_token_response``), and ``TokenAuth`` answers a 401 by adopting what another
process rotated meanwhile — never by presenting the spent refresh token, which this server
treats as theft and answers by revoking the whole family.

The 401 comes from real expiry: the manager's clock runs a minute behind the server's (a skew
only the server's answer reveals), so it still believes in a token the server has expired.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from _auth_fixtures import (
    CLIENT_ID,
    PASSWORD,
    USERNAME,
    OAuthServer,
    assert_no_token_in_logs,
    material_fp,
    reaped,
    start_worker,
    tokens_of,
)
from _harness import wait_for
from kitty_auth_refresh import (
    Clock,
    SessionStore,
    SyncTokenManager,
    TokenAuth,
    TokenEndpoint,
    session_from_token_response,
)

pytestmark = pytest.mark.timeout(90)
SHORT_TTL_S = 2
CLOCK_LAG = dt.timedelta(seconds=60)
EXPIRY_WAIT_S = 15.0  # cap on waiting for the server to expire the 2 s token
WORKER_TIMEOUT_S = 60.0


def test_token_auth_adopts_a_peer_rotation_on_401_without_presenting_a_spent_token(
    oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> None:
    lagging = Clock(now=lambda: dt.datetime.now(dt.UTC) - CLOCK_LAG)
    oauth.fault(access_ttl_s=SHORT_TTL_S)
    form = {
        "grant_type": "password",
        "username": USERNAME,
        "password": PASSWORD,
        "client_id": CLIENT_ID,
        "scope": "openid offline_access",
    }
    login = session_from_token_response(oauth.client.post("/oauth/token", data=form))
    assert login.id_token is not None  # the refresh path's fields, from a login
    store = SessionStore(kitty_home / "auth")
    with TokenEndpoint(oauth.token_url, CLIENT_ID) as endpoint:
        manager = SyncTokenManager(store, endpoint, clock=lagging)
        manager.save_login(login)
        with httpx.Client(auth=TokenAuth(manager), trust_env=False, timeout=30.0) as http:
            assert http.get(oauth.api_url).status_code == 200  # the login's bearer
            oauth.fault(access_ttl_s=300)
            wait_for(
                lambda: oauth.me(login.access_token) == 401,
                timeout=EXPIRY_WAIT_S,
                what="the server to expire the login's access token",
            )
            # Another CLI process forces a refresh: the login's refresh token is now spent.
            args = ["--no-preload", "--action", "refresh_force"]
            peer = start_worker(
                "peer", "manager", tmp_path, home=kitty_home, server=oauth, args=args
            )
            with reaped([peer]):
                assert peer.wait(WORKER_TIMEOUT_S) == 0
            assert peer.result()["outcome"] == "refreshed"
            response = http.get(oauth.api_url)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    counters = oauth.counters()
    assert (counters["refresh_requests"], counters["reuse_detected"]) == (1, 0)
    assert counters["family_revocations"] == 0
    assert oauth.presentations(login.refresh_token) == 1  # the peer's, never ours again
    persisted = store.read()
    assert material_fp(manager.session) == material_fp(persisted) == peer.result()["material"]
    assert_no_token_in_logs([peer.log_path], tokens_of(login, persisted))
