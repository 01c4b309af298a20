"""Issue 14: confidential clients, extra parameters, send-time expiry."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import pathlib
import pickle
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from _authkit import TOKEN_URL, FakeClock, Script, make_session, ok, refresh_lines, status
from kitty_auth_refresh import (
    ClientConfigRejected,
    LogoutResult,
    RefreshOutcome,
    RefreshProtocolError,
    RefreshRejected,
    Session,
    SessionStore,
    SyncTokenManager,
    TokenEndpoint,
    TransientRefreshError,
    UnverifiedClaims,
    auth_status,
    run_refresh_transaction,
    unverified_claims,
)

SECRET = "s3cr:et/+ é"


def _endpoint(script: Script, fake_clock: FakeClock, **kwargs: object) -> TokenEndpoint:
    return TokenEndpoint(
        TOKEN_URL,
        kwargs.pop("client_id", "kitty:cli"),  # type: ignore[arg-type]
        transport=httpx.MockTransport(script),
        now=lambda: fake_clock.wall,
        **kwargs,  # type: ignore[arg-type]
    )


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(request.content.decode())


def test_client_secret_basic_form_encodes_before_base64(fake_clock: FakeClock) -> None:
    script = Script([ok()])
    with _endpoint(
        script, fake_clock, client_secret=SECRET, auth_method="client_secret_basic"
    ) as endpoint:
        endpoint.refresh(make_session())
    (request,) = script.requests
    scheme, _, token = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, password = base64.b64decode(token).decode().partition(":")
    assert user == "kitty%3Acli"
    assert urllib.parse.unquote_plus(password) == SECRET
    assert urllib.parse.unquote(password) == SECRET  # also for servers using plain unquote
    assert password == urllib.parse.quote(SECRET, safe="")
    form = _form(request)
    assert "client_secret" not in form
    assert "client_id" not in form


def test_client_secret_post_sends_id_and_secret_in_the_form(fake_clock: FakeClock) -> None:
    script = Script([ok()])
    with _endpoint(
        script, fake_clock, client_secret=SECRET, auth_method="client_secret_post"
    ) as endpoint:
        endpoint.refresh(make_session())
    (request,) = script.requests
    assert "authorization" not in request.headers
    form = _form(request)
    assert form["client_id"] == ["kitty:cli"]
    assert form["client_secret"] == [SECRET]


def test_extra_params_are_sent_on_the_refresh(fake_clock: FakeClock) -> None:
    script = Script([ok()])
    params = {"scope": "openid email", "resource": "https://api.example", "audience": "api"}
    with _endpoint(script, fake_clock, extra_params=params) as endpoint:
        params["scope"] = "changed later"  # the endpoint kept its own copy
        endpoint.refresh(make_session())
    form = _form(script.requests[0])
    assert form["scope"] == ["openid email"]
    assert form["resource"] == ["https://api.example"]
    assert form["audience"] == ["api"]
    assert form["client_id"] == ["kitty:cli"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"auth_method": "client_secret_jwt"}, "auth_method"),
        ({"auth_method": "private_key_jwt"}, "needs a private_key"),
        ({"auth_method": "client_secret_basic"}, "needs a client_secret"),
        ({"auth_method": "client_secret_post", "client_secret": ""}, "needs a client_secret"),
        ({"client_secret": SECRET, "auth_method": "none"}, "client_secret_*"),
        ({"client_secret": SECRET, "auth_method": "private_key_jwt"}, "client_secret_*"),
        ({"private_key": "x", "auth_method": "none"}, "private_key_jwt"),
        ({"signing_alg": "RS256"}, "private_key_jwt"),
        ({"extra_params": {"grant_type": "password"}}, "grant_type"),
        ({"extra_params": {"scope": 1}}, "strings"),
    ],
)
def test_bad_client_configuration_is_refused(
    fake_clock: FakeClock, kwargs: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValueError, match="TokenEndpoint") as info:
        _endpoint(Script([]), fake_clock, **kwargs)
    assert needle in str(info.value)
    assert SECRET not in str(info.value)


def test_secret_never_in_repr_logs_or_errors(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"error": f"weird {SECRET}", "error_description": f"bad {SECRET}"}
    script = Script([status(418, body)])
    with _endpoint(
        script, fake_clock, client_secret=SECRET, auth_method="client_secret_post"
    ) as endpoint:
        assert SECRET not in repr(endpoint)
        assert "client_secret_post" in repr(endpoint)
        with pytest.raises(RefreshProtocolError) as info:
            endpoint.refresh(make_session())
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_expiry_counts_from_send_time_minus_one_second(fake_clock: FakeClock) -> None:
    sent_at = fake_clock.wall
    inner = ok(expires_in=60)

    def slow(request: httpx.Request) -> httpx.Response:
        fake_clock.advance(7)  # the answer takes 7 s to arrive
        return inner(request)

    with _endpoint(Script([slow]), fake_clock) as endpoint:
        new = endpoint.refresh(make_session())
    assert new.access_expires_at == sent_at + dt.timedelta(seconds=59)
    assert new.issued_at == sent_at


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (401, "invalid_client"),
        (400, "invalid_client"),
        (400, "unauthorized_client"),
        (400, "unsupported_grant_type"),
        (400, "invalid_scope"),
    ],
)
def test_client_rejection_is_its_own_outcome_and_keeps_the_session(
    store: SessionStore,
    lock_path: pathlib.Path,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    code: int,
    error: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    session = make_session(ttl_s=-1)
    store.write(session)
    body = {"error": error, "error_description": f"no {session.refresh_token} here"}
    with _endpoint(Script([status(code, body)]), fake_clock) as endpoint:
        result = run_refresh_transaction(
            store, session, endpoint, lock_path, clock=fake_clock.clock()
        )
    assert result.outcome is RefreshOutcome.CLIENT_REJECTED
    assert (result.status, result.error_kind) == (code, error)
    assert result.description == "no *** here"
    assert result.session == session
    assert store.read() == session
    (line,) = refresh_lines(caplog)
    assert "outcome=client_rejected" in line
    assert f"status={code}" in line
    assert f"error={error}" in line


def test_manager_backs_off_after_a_client_rejection(
    store: SessionStore, lock_path: pathlib.Path, fake_clock: FakeClock
) -> None:
    session = make_session(ttl_s=-1)
    store.write(session)
    body = {"error": "invalid_client", "error_description": "unknown client"}
    script = Script([status(401, body)])
    with _endpoint(
        script, fake_clock, client_secret=SECRET, auth_method="client_secret_basic"
    ) as endpoint:
        manager = SyncTokenManager(store, endpoint, lock_path, jitter=0.0, clock=fake_clock.clock())
        for _ in range(3):
            with pytest.raises(ClientConfigRejected) as info:
                manager.get_access_token()
            assert (info.value.status, info.value.error) == (401, "invalid_client")
            assert "client configuration" in str(info.value)
            assert SECRET not in str(info.value)
    assert len(script.requests) == 1
    assert store.read() == session
    assert manager.session == session
    copy = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own object
    assert (copy.status, copy.error, copy.description) == (401, "invalid_client", "unknown client")


def test_client_rejection_with_a_valid_token_keeps_serving_it(
    store: SessionStore, lock_path: pathlib.Path, fake_clock: FakeClock
) -> None:
    session = make_session(ttl_s=30, lifetime_s=600)
    store.write(session)
    script = Script([status(400, {"error": "invalid_scope"})])
    with _endpoint(script, fake_clock) as endpoint:
        manager = SyncTokenManager(store, endpoint, lock_path, jitter=0.0, clock=fake_clock.clock())
        assert manager.get_access_token() == session.access_token
        assert manager.get_access_token() == session.access_token
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"error": "invalid_grant", "error_description": {"nested": 1}},
        {"error": "invalid_client", "error_description": ["a", "b"]},
        {"error": ["invalid_grant"], "error_description": "x"},
        {"error": {"code": 1}},
    ],
)
def test_non_string_error_fields_become_typed_errors(
    fake_clock: FakeClock, body: dict[str, object]
) -> None:
    with (
        _endpoint(Script([status(400, body)]), fake_clock) as endpoint,
        pytest.raises((RefreshRejected, ClientConfigRejected, RefreshProtocolError)) as info,
    ):
        endpoint.refresh(make_session())
    description = getattr(info.value, "description", None)
    assert description is None or isinstance(description, str)


def _jwt(claims: dict[str, object]) -> str:
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_id_token_is_kept_and_its_claims_are_exposed_unverified(
    store: SessionStore, fake_clock: FakeClock
) -> None:
    claims = {"sub": "u-9", "email": "n@example.com", "name": "Nia", "exp": 1_900_000_000}
    id_token = _jwt(claims)
    with _endpoint(Script([ok(id_token=id_token)]), fake_clock) as endpoint:
        new = endpoint.refresh(make_session(subject=None, email=None))
    assert new.id_token == id_token
    assert id_token not in repr(new)
    store.write(new)
    assert store.read() == new
    got = new.unverified_claims
    assert got == UnverifiedClaims(
        sub="u-9",
        email="n@example.com",
        name="Nia",
        exp=dt.datetime.fromtimestamp(1_900_000_000, dt.UTC),
    )
    status_now = auth_status(store, now=fake_clock.wall)
    assert (status_now.subject, status_now.email, status_now.name) == (
        "u-9",
        "n@example.com",
        "Nia",
    )


@pytest.mark.parametrize(
    "token", ["not-a-jwt", "a.!!!.c", "a.W10.c", f"a.{'e30'}.c", "a.eyJleHAiOiAxZTQwMH0.c"]
)
def test_unverified_claims_tolerates_garbage(token: str) -> None:
    got = unverified_claims(token)
    assert got is None or got == UnverifiedClaims()


class _RecordingEndpoint(TokenEndpoint):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts: list[float | None] = []

    def refresh(self, session: Session, timeout: float | None = None) -> Session:
        self.timeouts.append(timeout)
        return super().refresh(session, timeout)


def _replay_then(
    store: SessionStore, peer: Session, fake_clock: FakeClock, retry_after: int, took_s: float
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        store.write(peer)  # a peer rotated meanwhile
        fake_clock.advance(took_s)
        body = {"error": "refresh_replay_benign_retry", "retry_after": retry_after}
        return httpx.Response(409, json=body)

    return handler


def test_replay_whose_retry_after_exceeds_the_budget_gives_up_without_sleeping(
    store: SessionStore, lock_path: pathlib.Path, fake_clock: FakeClock
) -> None:
    mine, peer = make_session(ttl_s=-1), make_session(ttl_s=-1)
    store.write(mine)
    script = Script([_replay_then(store, peer, fake_clock, retry_after=5, took_s=1)])
    endpoint = _RecordingEndpoint(
        TOKEN_URL, "kitty-cli", transport=httpx.MockTransport(script), now=lambda: fake_clock.wall
    )
    with endpoint:
        result = run_refresh_transaction(
            store, mine, endpoint, lock_path, max_hold=5.5, clock=fake_clock.clock()
        )
    assert result.outcome is RefreshOutcome.LOCK_TIMEOUT_ERROR
    assert result.error_kind == "replay"
    assert fake_clock.sleeps == []  # never sleeps under the lock when it cannot retry anyway
    assert len(script.requests) == 1


def test_replay_retry_timeout_never_exceeds_what_max_hold_leaves(
    store: SessionStore, lock_path: pathlib.Path, fake_clock: FakeClock
) -> None:
    mine, peer = make_session(ttl_s=-1), make_session(ttl_s=-1)
    store.write(mine)
    script = Script([_replay_then(store, peer, fake_clock, retry_after=2, took_s=1), ok()])
    endpoint = _RecordingEndpoint(
        TOKEN_URL,
        "kitty-cli",
        30.0,
        transport=httpx.MockTransport(script),
        now=lambda: fake_clock.wall,
    )
    with endpoint:
        result = run_refresh_transaction(
            store, mine, endpoint, lock_path, max_hold=8.0, clock=fake_clock.clock()
        )
    assert result.outcome is RefreshOutcome.REFRESHED
    assert fake_clock.sleeps == [2]
    first, retry = endpoint.timeouts
    assert first is not None
    assert first <= 8.0
    assert retry is not None
    assert retry <= 8.0 - 1 - 2  # the hold budget left after the first answer and the sleep
    assert script.presented() == [mine.refresh_token, peer.refresh_token]


REVOKE_URL = "http://127.0.0.1:9/oauth/revoke"


def test_logout_revokes_the_refresh_token(
    store: SessionStore, lock_path: pathlib.Path, fake_clock: FakeClock
) -> None:
    session = make_session()
    store.write(session)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    endpoint = TokenEndpoint(
        TOKEN_URL,
        "kitty-cli",
        transport=httpx.MockTransport(handler),
        client_secret=SECRET,
        auth_method="client_secret_post",
        revocation_url=REVOKE_URL,
    )
    with endpoint:
        manager = SyncTokenManager(store, endpoint, lock_path, clock=fake_clock.clock())
        result = manager.logout()
    assert store.read() is None
    assert result == LogoutResult(session_removed=True, revoked=True)
    (request,) = seen
    assert str(request.url) == REVOKE_URL
    form = _form(request)
    assert form["token"] == [session.refresh_token]
    assert form["token_type_hint"] == ["refresh_token"]
    assert form["client_secret"] == [SECRET]


@pytest.mark.parametrize("answer", ["down", 503])
def test_logout_tolerates_a_down_revocation_endpoint(
    store: SessionStore,
    lock_path: pathlib.Path,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    answer: object,
) -> None:
    caplog.set_level(logging.DEBUG)
    session = make_session()
    store.write(session)

    def handler(request: httpx.Request) -> httpx.Response:
        if answer == "down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(503)

    endpoint = TokenEndpoint(
        TOKEN_URL, "kitty-cli", transport=httpx.MockTransport(handler), revocation_url=REVOKE_URL
    )
    with endpoint:
        manager = SyncTokenManager(store, endpoint, lock_path, clock=fake_clock.clock())
        result = manager.logout()
        assert endpoint.revoke("x") is False
        again = manager.logout()  # nothing left to remove or revoke
    assert store.read() is None
    # The result says the provider was not told, and that the local session is gone anyway.
    assert result == LogoutResult(session_removed=True, revoked=False)
    assert again == LogoutResult(session_removed=False, revoked=None)
    assert any("token revocation failed" in r.getMessage() for r in caplog.records)
    assert all(session.refresh_token not in r.getMessage() for r in caplog.records)


def test_revoke_without_url_and_bad_url(fake_clock: FakeClock) -> None:
    with _endpoint(Script([]), fake_clock) as endpoint:
        assert endpoint.revoke("x") is False
    with pytest.raises(ValueError, match="revocation_url"):
        TokenEndpoint(TOKEN_URL, "kitty-cli", revocation_url="ftp://x")


def _issuer_server(
    issuer: str, *, oidc: bool = True, doc_issuer: str | None = None
) -> tuple[list[str], httpx.MockTransport]:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        wanted = "openid-configuration" if oidc else "oauth-authorization-server"
        if wanted not in request.url.path:
            return httpx.Response(404)
        doc = {
            "issuer": doc_issuer or issuer,
            "token_endpoint": f"{issuer}/token",
            "revocation_endpoint": f"{issuer}/revoke",
        }
        return httpx.Response(200, json=doc)

    return paths, httpx.MockTransport(handler)


def test_from_issuer_uses_openid_configuration_and_caches() -> None:
    issuer = "http://127.0.0.1:9/realm-a"
    paths, transport = _issuer_server(issuer)
    with TokenEndpoint.from_issuer(issuer, "kitty-cli", transport=transport) as endpoint:
        assert endpoint.url == f"{issuer}/token"
        assert endpoint.revocation_url == f"{issuer}/revoke"
    with TokenEndpoint.from_issuer(issuer, "kitty-cli", transport=transport):
        pass
    assert paths == ["/realm-a/.well-known/openid-configuration"]


def test_from_issuer_falls_back_to_rfc8414() -> None:
    issuer = "http://127.0.0.1:9/realm-b"
    paths, transport = _issuer_server(issuer, oidc=False)
    with TokenEndpoint.from_issuer(issuer, "kitty-cli", transport=transport) as endpoint:
        assert endpoint.url == f"{issuer}/token"
    assert paths == [
        "/realm-b/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/realm-b",
    ]


def test_from_issuer_refuses_a_mismatched_issuer_and_plain_http() -> None:
    issuer = "http://127.0.0.1:9/realm-c"
    _, transport = _issuer_server(issuer, doc_issuer="http://127.0.0.1:9/evil")
    with pytest.raises(RefreshProtocolError, match="another issuer"):
        TokenEndpoint.from_issuer(issuer, "kitty-cli", transport=transport)
    with pytest.raises(ValueError, match="https"):
        TokenEndpoint.from_issuer("http://idp.example", "kitty-cli")


def test_from_issuer_reports_missing_and_unreachable_documents() -> None:
    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(RefreshProtocolError, match="404"):
        TokenEndpoint.from_issuer(
            "http://127.0.0.1:9/realm-d", "c", transport=httpx.MockTransport(missing)
        )
    with pytest.raises(TransientRefreshError):
        TokenEndpoint.from_issuer(
            "http://127.0.0.1:9/realm-e", "c", transport=httpx.MockTransport(down)
        )
