"""INT-14 against panva's oidc-provider (issue 14): what a real deployment needs, end to end.

The provider is strict (3 s access tokens stamped in whole seconds, zero clock tolerance,
rotation with grant revocation on reuse) and nobody here wrote it. Through kitty's public API:

- every client authentication method refreshes through discovery (`TokenEndpoint.from_issuer`),
  the provider saw the method on the wire, and the id_token's claims reach `auth_status`;
- `invalid_client` (wrong secret, deleted client) is `client_rejected`: the session is kept byte
  for byte, the log line names status and error, and retries back off instead of hammering;
- an outage near expiry serves no token the provider already considers expired (each served
  token is checked at userinfo and against the provider's own exp);
- a revocation at the provider ends the session once (relogin required), and `logout()` revokes
  the grant at the provider's RFC 7009 endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _auth_fixtures import (
    assert_file_unchanged,
    assert_no_secret_in,
    session_file,
    token_hash,
    tokens_of,
)
from _jws import CLIENT_KEY_ID
from _oidc_provider import (
    BASIC_CLIENT,
    JWT_CLIENT,
    POST_CLIENT,
    PUBLIC_CLIENT,
    SECRETS,
    OidcProvider,
    login_to_home,
    running_provider,
)
from kitty_auth_refresh import (
    AuthState,
    ClientConfigRejected,
    LogoutResult,
    NotAuthenticated,
    RefreshOutcome,
    ReloginRequired,
    SessionStore,
    SyncTokenManager,
    TokenEndpoint,
    TransientRefreshError,
    auth_status,
)

pytestmark = pytest.mark.timeout(60)
LOGIN_COMMAND = "kitty-demo login"
#: How each client's credentials reach the provider (provider.mjs logs the mechanism it saw).
WIRE_AUTH = {
    PUBLIC_CLIENT: "none",
    BASIC_CLIENT: "basic",
    POST_CLIENT: "post",
    JWT_CLIENT: "assertion",
}
OUTAGE_WATCH_S = 4.0  # longer than a whole token life: the outage outlasts the token
POLL_S = 0.02  # pacing of the caller in the outage test; orders nothing


@pytest.fixture(scope="module")
def _provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_provider(tmp_path_factory.mktemp("oidc-provider")) as provider:
        yield provider


@pytest.fixture
def op(_provider: OidcProvider) -> OidcProvider:
    _provider.reset()
    return _provider


def _credentials(op: OidcProvider, client_id: str) -> dict[str, Any]:
    """What the app passes for this client. kitty-post names its method: the provider also
    accepts Basic for it, so discovery alone would pick client_secret_basic."""
    if client_id == JWT_CLIENT:
        return {"private_key": op.client_key, "private_key_id": CLIENT_KEY_ID}
    if client_id == POST_CLIENT:
        return {"client_secret": SECRETS[client_id], "auth_method": "client_secret_post"}
    if client_id in SECRETS:
        return {"client_secret": SECRETS[client_id]}
    return {}


@pytest.mark.parametrize("client_id", [PUBLIC_CLIENT, BASIC_CLIENT, POST_CLIENT, JWT_CLIENT])
def test_every_client_method_refreshes_through_discovery(
    op: OidcProvider, kitty_home: Path, client_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    original = login_to_home(op, kitty_home, client_id)
    store = SessionStore(kitty_home / "auth")
    with TokenEndpoint.from_issuer(op.issuer, client_id, **_credentials(op, client_id)) as endpoint:
        assert endpoint.url == op.token_url
        assert endpoint.revocation_url == f"{op.issuer}/token/revocation"
        manager = SyncTokenManager(store, endpoint)
        result = manager.refresh_if_needed(force=True)
        shown = repr(endpoint)
    assert result is not None
    assert result.outcome is RefreshOutcome.REFRESHED
    [entry] = op.log("refresh")
    assert (entry["client"], entry["auth"], entry["status"]) == (
        client_id,
        WIRE_AUTH[client_id],
        200,
    )
    new = store.read()
    assert new is not None
    assert op.userinfo(new.access_token) == 200
    assert new.id_token is not None  # kept from the refresh response
    status = auth_status(store)
    assert (status.state, status.subject, status.email, status.name) == (
        AuthState.AUTHENTICATED,
        "alice",
        "alice@example.com",
        "Alice Liddell",
    )
    secrets = [*tokens_of(original, new), *([SECRETS[client_id]] if client_id in SECRETS else [])]
    where = caplog.text + shown + str(result)
    assert_no_secret_in(where, secrets, "logs, repr or the outcome line")
    if client_id in SECRETS:
        assert SECRETS[client_id] not in session_file(kitty_home).read_text()


@pytest.mark.parametrize("case", ["wrong_secret", "deleted_client"])
def test_invalid_client_is_client_rejected_and_the_session_is_kept(
    op: OidcProvider, kitty_home: Path, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="kitty_auth_refresh")
    # Locally expired already, so the rejection reaches the caller (nothing valid to serve).
    if case == "wrong_secret":
        login_to_home(op, kitty_home, BASIC_CLIENT, remaining_s=0)
        endpoint = TokenEndpoint(op.token_url, BASIC_CLIENT, client_secret="not-the-secret")
    else:
        login_to_home(op, kitty_home, PUBLIC_CLIENT, remaining_s=0)
        endpoint = TokenEndpoint(op.token_url, "kitty-deleted")
    before = session_file(kitty_home).read_bytes()
    errors: list[ClientConfigRejected] = []
    with endpoint:
        manager = SyncTokenManager(SessionStore(kitty_home / "auth"), endpoint)
        for _ in range(3):
            with pytest.raises(ClientConfigRejected) as info:
                manager.get_access_token()
            errors.append(info.value)

    assert [(e.status, e.error) for e in errors] == [(401, "invalid_client")] * 3
    counters = op.counters()
    assert (counters["refresh_requests"], counters["client_rejected"]) == (1, 1)  # backed off
    assert_file_unchanged(session_file(kitty_home), before, "kept after invalid_client")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refresh ")]
    assert len(lines) == 1, lines
    assert "outcome=client_rejected network_call=true" in lines[0]
    assert "status=401" in lines[0]
    assert "error=invalid_client" in lines[0]
    assert "not-the-secret" not in caplog.text + str(errors[0])


@pytest.mark.parametrize("outage", ["503", "reset"])
def test_outage_near_expiry_serves_no_expired_token(
    op: OidcProvider, kitty_home: Path, outage: str
) -> None:
    login_to_home(op, kitty_home)
    store = SessionStore(kitty_home / "auth")
    served: list[tuple[str, float, int]] = []  # (token hash, wall time served, userinfo status)
    refused: list[float] = []
    with TokenEndpoint(op.token_url, PUBLIC_CLIENT) as endpoint:
        manager = SyncTokenManager(store, endpoint)
        # The token at stake comes from kitty's own refresh: kitty dated its expiry.
        forced = manager.refresh_if_needed(force=True)
        assert forced is not None
        assert forced.outcome is RefreshOutcome.REFRESHED
        op.fault(outage=outage)
        try:
            deadline = time.monotonic() + OUTAGE_WATCH_S
            while time.monotonic() < deadline:
                try:
                    token = manager.get_access_token()
                except TransientRefreshError:
                    refused.append(time.time())
                else:
                    served.append((token_hash(token), time.time(), op.userinfo(token)))
                time.sleep(POLL_S)
        finally:
            op.fault(outage=None)

    exp = {e["at_hash"]: e["exp"] for e in op.log("userinfo")}
    late = [(t, exp[h]) for h, t, _ in served if t >= exp[h]]
    assert served, "no token was served during the outage (work while valid)"
    assert late == [], f"{len(late)} tokens served at or after the provider's exp"
    assert len({h for h, _, _ in served}) == 1  # the same token all along: nothing refreshed
    assert refused, "the outage outlived the token, yet kitty never said so"
    assert min(refused) > max(t for _, t, _ in served)  # once refused, never served again
    rejected = [t for _, t, status in served if status != 200]
    assert rejected == [], f"{len(rejected)} served tokens were rejected by userinfo"
    counters = op.counters()
    attempts = counters["served_503"] + counters["dropped"]
    assert attempts >= 1  # kitty did try to refresh within the margin
    assert attempts <= 3, counters  # ... and backed off (2 s, then 4 s) instead of hammering
    assert store.read() is not None  # an outage never logs anyone out


def test_revocation_at_the_provider_requires_relogin_once(
    op: OidcProvider, kitty_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    original = login_to_home(op, kitty_home)
    op.revoke(original.refresh_token)  # e.g. "sign out everywhere" on another device
    with TokenEndpoint(op.token_url, PUBLIC_CLIENT) as endpoint:
        manager = SyncTokenManager(
            SessionStore(kitty_home / "auth"), endpoint, login_command=LOGIN_COMMAND
        )
        manager.get_access_token()  # loads the (locally still valid) session
        with pytest.raises(ReloginRequired) as ended:
            manager.refresh_if_needed(force=True)
        with pytest.raises(NotAuthenticated):
            manager.get_access_token()

    assert ended.value.cause == "invalid_grant"
    assert f"Run `{LOGIN_COMMAND}` to sign in again." in str(ended.value)
    assert not session_file(kitty_home).exists()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refresh ")]
    assert len(lines) == 1, lines
    assert "outcome=current_rejection_cleared network_call=true" in lines[0]
    counters = op.counters()
    assert (counters["revocations"], counters["refresh_rejected"]) == (1, 1)
    assert_no_secret_in(caplog.text + str(ended.value), tokens_of(original), "log or message")


@pytest.mark.parametrize("client_id", [PUBLIC_CLIENT, JWT_CLIENT])
def test_logout_revokes_the_grant_at_the_provider(
    op: OidcProvider, kitty_home: Path, client_id: str
) -> None:
    original = login_to_home(op, kitty_home, client_id)
    credentials = _credentials(op, client_id)
    with TokenEndpoint.from_issuer(op.issuer, client_id, **credentials) as endpoint:
        manager = SyncTokenManager(SessionStore(kitty_home / "auth"), endpoint)
        manager.get_access_token()
        result = manager.logout()

    assert result == LogoutResult(session_removed=True, revoked=True)
    assert not session_file(kitty_home).exists()
    counters = op.counters()
    assert (counters["revocations"], counters["grant_revocations"]) == (1, 1)
    assert op.introspect(original.refresh_token)["active"] is False
    assert op.introspect(original.access_token)["active"] is False  # the whole grant went
    again = op.raw_refresh(original.refresh_token, client_id)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
