"""INT-14 against the Authlib server (issue 14): private_key_jwt, discovery, invalid_client,
whole-second iat, id_tokens and RFC 7009 revocation, through kitty's public API.

The server verifies client assertions with Authlib's own RFC 7523 code against the public key
the test registered, stamps ``iat`` in whole seconds (a token issued at x.9 s expires 0.9 s
before "issue time + expires_in"), signs an id_token into every token response and revokes a
token's whole family at ``/oauth/revoke``.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from _auth_fixtures import (
    CLIENT_ID,
    PASSWORD,
    USERNAME,
    OAuthServer,
    assert_file_unchanged,
    login_to_home,
    session_file,
    session_from_token,
)
from _jws import CLIENT_KEY_ID, es256_jwt
from _oauth_server import (
    CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_SECRET,
    JWT_CLIENT_ID,
    NAME,
    TENANT_PATH,
)
from kitty_auth_refresh import (
    ClientConfigRejected,
    LogoutResult,
    RefreshOutcome,
    Session,
    SessionStore,
    SyncTokenManager,
    TokenEndpoint,
    TransientRefreshError,
    auth_status,
)

pytestmark = pytest.mark.timeout(60)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SHORT_TTL_S = 2
OUTAGE_WATCH_S = 3.0  # longer than the whole (2 s) token life
POLL_S = 0.02  # pacing of the caller in the outage test; orders nothing


def _jwt_login(oauth: OAuthServer) -> Session:
    """Password grant as kitty-jwt, the assertion signed by the harness (not by kitty)."""
    now = int(time.time())
    claims = {
        "iss": JWT_CLIENT_ID,
        "sub": JWT_CLIENT_ID,
        "aud": oauth.token_url,
        "jti": f"login-{time.monotonic_ns()}",
        "iat": now,
        "exp": now + 60,
    }
    response = oauth.client.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": USERNAME,
            "password": PASSWORD,
            "scope": "openid offline_access",
            "client_id": JWT_CLIENT_ID,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": es256_jwt(oauth.client_key, claims, CLIENT_KEY_ID),
        },
    )
    response.raise_for_status()
    token: dict[str, Any] = response.json()
    return session_from_token(token)


def test_private_key_jwt_refreshes_and_a_wrong_key_is_rejected(
    oauth: OAuthServer, kitty_home: Path
) -> None:
    store = SessionStore(kitty_home / "auth")
    store.write(session := _jwt_login(oauth))
    with TokenEndpoint(
        oauth.token_url, JWT_CLIENT_ID, private_key=oauth.client_key, private_key_id=CLIENT_KEY_ID
    ) as endpoint:
        assert endpoint.auth_method == "private_key_jwt"
        result = SyncTokenManager(store, endpoint).refresh_if_needed(force=True)
    assert result is not None
    assert result.outcome is RefreshOutcome.REFRESHED
    new = store.read()
    assert new is not None
    assert new.refresh_token != session.refresh_token
    assert oauth.me(new.access_token) == 200

    stranger = ec.generate_private_key(ec.SECP256R1())  # not the registered key
    before = session_file(kitty_home).read_bytes()
    with TokenEndpoint(oauth.token_url, JWT_CLIENT_ID, private_key=stranger) as endpoint:
        rejected = SyncTokenManager(store, endpoint).refresh_if_needed(force=True)
    assert rejected is not None
    assert (rejected.outcome, rejected.error_kind) == (
        RefreshOutcome.CLIENT_REJECTED,
        "invalid_client",
    )
    assert rejected.status == 400  # Authlib: 401 only when the client used an Authorization header
    assert_file_unchanged(session_file(kitty_home), before, "kept after invalid_client")


@pytest.mark.parametrize("issuer_path", ["", TENANT_PATH])
def test_discovery_builds_a_working_confidential_endpoint(
    oauth: OAuthServer, kitty_home: Path, issuer_path: str
) -> None:
    """The root issuer has an openid-configuration; the /tenant issuer only RFC 8414 metadata."""
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
    store = SessionStore(kitty_home / "auth")
    store.write(session_from_token(response.raise_for_status().json()))
    issuer = oauth.url + issuer_path
    with TokenEndpoint.from_issuer(
        issuer, CONFIDENTIAL_CLIENT_ID, client_secret=CONFIDENTIAL_SECRET
    ) as endpoint:
        assert (endpoint.url, endpoint.revocation_url) == (
            oauth.token_url,
            f"{oauth.url}/oauth/revoke",
        )
        assert endpoint.auth_method == "client_secret_basic"  # first fit the server lists
        result = SyncTokenManager(store, endpoint).refresh_if_needed(force=True)
    assert result is not None
    assert result.outcome is RefreshOutcome.REFRESHED


def test_unknown_client_is_client_rejected_once_per_backoff(
    oauth: OAuthServer, kitty_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="kitty_auth_refresh")
    login_to_home(oauth, kitty_home, expired=True)  # nothing valid to serve
    before = session_file(kitty_home).read_bytes()
    with TokenEndpoint(oauth.token_url, "kitty-deleted") as endpoint:
        manager = SyncTokenManager(SessionStore(kitty_home / "auth"), endpoint)
        for _ in range(3):
            with pytest.raises(ClientConfigRejected) as info:
                manager.get_access_token()
            assert (info.value.status, info.value.error) == (400, "invalid_client")
    assert oauth.counters()["refresh_requests"] == 1
    assert_file_unchanged(session_file(kitty_home), before, "kept after invalid_client")
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refresh ")]
    assert "outcome=client_rejected" in line
    assert "status=400 error=invalid_client" in line


def test_id_token_claims_reach_auth_status(oauth: OAuthServer, kitty_home: Path) -> None:
    login_to_home(oauth, kitty_home)
    store = SessionStore(kitty_home / "auth")
    with TokenEndpoint(oauth.token_url, CLIENT_ID) as endpoint:
        SyncTokenManager(store, endpoint).refresh_if_needed(force=True)
    session = store.read()
    assert session is not None
    assert session.id_token is not None
    claims = session.unverified_claims
    assert claims is not None
    assert (claims.sub, claims.name) == ("alice", NAME)
    assert claims.exp is not None
    assert claims.exp > dt.datetime.now(dt.UTC)
    assert auth_status(store).name == NAME  # the name exists only in the id_token


def test_whole_second_iat_outage_near_expiry_serves_no_expired_token(
    oauth: OAuthServer, kitty_home: Path
) -> None:
    oauth.fault(access_ttl_s=SHORT_TTL_S)
    login_to_home(oauth, kitty_home)
    store = SessionStore(kitty_home / "auth")
    statuses: list[int] = []
    refused = 0
    with TokenEndpoint(oauth.token_url, CLIENT_ID) as endpoint:
        manager = SyncTokenManager(store, endpoint)
        forced = manager.refresh_if_needed(force=True)  # kitty dates the token at stake
        assert forced is not None
        assert forced.outcome is RefreshOutcome.REFRESHED
        oauth.fault(fail_503=1000)
        deadline = time.monotonic() + OUTAGE_WATCH_S
        while time.monotonic() < deadline:
            try:
                statuses.append(oauth.me(manager.get_access_token()))
            except TransientRefreshError:
                refused += 1
            time.sleep(POLL_S)
    assert statuses, "no token was served while it was still valid"
    assert refused, "the outage outlived the token, yet kitty never said so"
    assert set(statuses) == {200}, f"{statuses.count(401)} served tokens were already expired"
    assert oauth.counters()["api_rejected_expired"] == 0
    assert oauth.counters()["served_503"] <= 2  # backed off, not one request per call


def test_logout_revokes_the_family_at_the_server(oauth: OAuthServer, kitty_home: Path) -> None:
    original = login_to_home(oauth, kitty_home)
    with TokenEndpoint.from_issuer(oauth.url, CLIENT_ID) as endpoint:
        manager = SyncTokenManager(SessionStore(kitty_home / "auth"), endpoint)
        manager.get_access_token()
        assert manager.logout() == LogoutResult(session_removed=True, revoked=True)
    assert not session_file(kitty_home).exists()
    counters = oauth.counters()
    assert (counters["revocations"], counters["family_revocations"]) == (1, 1)
    again = oauth.raw_refresh(original.refresh_token)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    assert oauth.me(original.access_token) == 401  # the whole family went
