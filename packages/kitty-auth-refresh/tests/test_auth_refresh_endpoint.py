"""``TokenEndpoint``: request shape, response interpretation, proxies, skew (AUTH-09 .. AUTH-14)."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import pathlib
import pickle
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from _authkit import T0, FakeClock, Script, TokenServer, make_session, ok, status
from kitty_auth_refresh import (
    RefreshOutcome,
    RefreshProtocolError,
    RefreshRejected,
    RefreshReplay,
    SessionStore,
    TokenEndpoint,
    TransientRefreshError,
    run_refresh_transaction,
)

EndpointFor = Callable[..., TokenEndpoint]


def test_request_is_an_rfc6749_refresh_grant(endpoint_for: EndpointFor) -> None:
    session = make_session()
    script = Script([ok()])
    endpoint_for(script).refresh(session)
    (request,) = script.requests
    assert request.method == "POST"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    # A fresh connection per refresh: the whole-request deadline (AUTH-24) can only cut
    # sockets it saw being connected.
    assert request.headers["connection"] == "close"
    form = urllib.parse.parse_qs(request.content.decode())
    assert form == {
        "grant_type": ["refresh_token"],
        "refresh_token": [session.refresh_token],
        "client_id": ["kitty-cli"],
    }


def test_success_builds_new_session_from_send_time(
    endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    old = make_session(extra={"team_hint": "t"}, scope="a")
    body = {
        "access_token": "new-acc",
        "refresh_token": "new-ref",
        "expires_in": 120,
        "scope": "a b",
        "session_id": "sess-2",
        "subject": "user-2",
        "refresh_token_expires_in": 86400,
    }
    new = endpoint_for(Script([status(200, body)])).refresh(old)
    assert new.access_token == "new-acc"
    assert new.refresh_token == "new-ref"
    assert new.issued_at == fake_clock.wall
    # Minus the documented 1 s allowance (issue 14).
    assert new.access_expires_at == fake_clock.wall + dt.timedelta(seconds=119)
    assert new.refresh_expires_at == fake_clock.wall + dt.timedelta(days=1)
    assert (new.scope, new.session_id, new.subject, new.email) == (
        "a b",
        "sess-2",
        "user-2",
        old.email,
    )
    assert dict(new.extra) == {"team_hint": "t"}


def test_non_rotating_server_keeps_refresh_token_and_expiry(endpoint_for: EndpointFor) -> None:
    old = make_session(refresh_expires_at=T0 + dt.timedelta(days=3))
    new = endpoint_for(Script([ok(refresh="", expires_in=60)])).refresh(old)
    assert new.refresh_token == old.refresh_token
    assert new.session_id == old.session_id
    assert new.refresh_expires_at == old.refresh_expires_at


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2031-02-03T04:05:06Z", dt.datetime(2031, 2, 3, 4, 5, 6, tzinfo=dt.UTC)),
        (1_900_000_000, dt.datetime.fromtimestamp(1_900_000_000, dt.UTC)),
    ],
)
def test_absolute_refresh_expiry(endpoint_for: EndpointFor, value: Any, expected: Any) -> None:
    new = endpoint_for(
        Script([ok(refresh_token_expires_at=value, refresh_token_expires_in=5)])
    ).refresh(make_session())
    assert new.refresh_expires_at == expected


def test_missing_expires_in_defaults_to_300_with_one_warning(
    endpoint_for: EndpointFor, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def no_expiry(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "a"})

    new = endpoint_for(Script([no_expiry])).refresh(make_session())
    assert new.access_expires_at == fake_clock.wall + dt.timedelta(seconds=299)  # 1 s allowance
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "expires_in" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "body",
    [
        {"access_token": "a", "expires_in": "soon"},
        {"access_token": "a", "expires_in": True},
        {"access_token": "", "expires_in": 5},
        {"access_token": 5},
        {"access_token": "a", "refresh_token_expires_at": "later"},
        ["not", "an", "object"],
    ],
)
def test_malformed_success_is_a_protocol_error(endpoint_for: EndpointFor, body: Any) -> None:
    with pytest.raises(RefreshProtocolError) as info:
        endpoint_for(Script([status(200, body)])).refresh(make_session())
    assert info.value.status == 200
    assert info.value.kind == "protocol"


@pytest.mark.parametrize("code", [400, 401, 403])
@pytest.mark.parametrize("kind", ["invalid_grant", "session_invalid"])
def test_rejections(endpoint_for: EndpointFor, code: int, kind: str) -> None:
    with pytest.raises(RefreshRejected) as info:
        endpoint_for(Script([status(code, {"error": kind})])).refresh(make_session())
    assert info.value.kind == kind
    assert info.value.status == code


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        ({"error": "refresh_replay_benign_retry"}, {}, 0),
        ({"error": "refresh_replay_benign_retry", "retry_after": 2}, {}, 2),
        ({"error": "refresh_replay_benign_retry", "retry_after": 99}, {}, 5),
        ({"error": "refresh_replay_benign_retry", "retry_after": -3}, {}, 0),
        ({"error": "refresh_replay_benign_retry", "retry_after": "x"}, {}, 0),
        ({"error": "refresh_replay_benign_retry"}, {"Retry-After": "3"}, 3),
        ({"error": "refresh_replay_benign_retry"}, {"Retry-After": "soon"}, 0),
    ],
)
def test_replay_retry_after_is_clamped(
    endpoint_for: EndpointFor, body: Any, headers: dict[str, str], expected: int
) -> None:
    with pytest.raises(RefreshReplay) as info:
        endpoint_for(Script([status(409, body, **headers)])).refresh(make_session())
    assert info.value.retry_after == expected


@pytest.mark.parametrize(
    ("code", "kind"),
    [(500, "server_error"), (502, "server_error"), (408, "timeout"), (429, "rate_limited")],
)
def test_transient_statuses(endpoint_for: EndpointFor, code: int, kind: str) -> None:
    with pytest.raises(TransientRefreshError) as info:
        endpoint_for(Script([status(code, {"error": "x"})])).refresh(make_session())
    assert (info.value.kind, info.value.status) == (kind, code)
    assert isinstance(info.value, ConnectionError)


def test_error_text_is_scrubbed_and_truncated(endpoint_for: EndpointFor) -> None:
    session = make_session()
    description = f"token {session.refresh_token} and {session.access_token} " + "x" * 500
    with pytest.raises(RefreshRejected) as info:
        endpoint_for(
            Script([status(400, {"error": "invalid_grant", "error_description": description})])
        ).refresh(session)
    text = str(info.value)
    assert session.refresh_token not in text
    assert session.access_token not in text
    assert "***" in text
    assert info.value.description is not None
    assert len(info.value.description) <= 200
    clone = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own bytes
    assert str(clone) == text


def test_protocol_error_names_status_and_server_error(endpoint_for: EndpointFor) -> None:
    with pytest.raises(RefreshProtocolError) as info:
        endpoint_for(Script([status(418, {"error": "teapot"})])).refresh(make_session())
    assert "HTTP 418" in str(info.value)
    assert "teapot" in str(info.value)


@pytest.mark.parametrize("skew_s", [-3600, 3600])
def test_clock_skew_warns_once(
    endpoint_for: EndpointFor, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture, skew_s: int
) -> None:
    caplog.set_level(logging.DEBUG)
    server_time = fake_clock.wall + dt.timedelta(seconds=skew_s)

    def dated(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"access_token": "a", "expires_in": 60},
            headers={"Date": email.utils.format_datetime(server_time, usegmt=True)},
        )

    new = endpoint_for(Script([dated])).refresh(make_session())
    # Expiry still uses the local (send) time: skew cannot make a fresh token look expired.
    assert new.access_expires_at == fake_clock.wall + dt.timedelta(seconds=59)
    skews = [r.getMessage() for r in caplog.records if "clock skew" in r.getMessage()]
    assert skews == [f"clock skew detected skew_s={skew_s}"]


@pytest.mark.parametrize("date", ["garbage", email.utils.format_datetime(T0, usegmt=True)])
def test_no_skew_warning_for_small_or_unparseable_dates(
    endpoint_for: EndpointFor, caplog: pytest.LogCaptureFixture, date: str
) -> None:
    caplog.set_level(logging.DEBUG)

    def dated(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "a"}, headers={"Date": date})

    endpoint_for(Script([dated])).refresh(make_session())
    assert not [r for r in caplog.records if "clock skew" in r.getMessage()]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"url": "ftp://x/token"}, "http"),
        ({"url": "not a url"}, "http"),
        ({"client_id": ""}, "client_id"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], fragment: str) -> None:
    args: dict[str, Any] = {"url": "http://127.0.0.1:1/t", "client_id": "c", "timeout": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=fragment):
        TokenEndpoint(args["url"], args["client_id"], args["timeout"])


@pytest.mark.parametrize(
    ("url", "trust_env"),
    [
        ("http://127.0.0.1:8080/t", False),
        ("http://[::1]:8080/t", False),
        ("http://localhost:8080/t", False),
        ("https://auth.example.com/t", True),
    ],
)
def test_proxy_environment_ignored_only_for_loopback(url: str, trust_env: bool) -> None:
    with TokenEndpoint(url, "c") as endpoint:
        assert endpoint._http().trust_env is trust_env
        assert "c" in repr(endpoint)


# ---- real loopback socket ---------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[TokenServer]:
    srv = TokenServer()
    try:
        yield srv
    finally:
        srv.close()


def test_loopback_request_bypasses_a_hostile_proxy(
    server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that does not exist: going through it would fail with a transport error.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = make_session()
    with TokenEndpoint(server.url, "c") as endpoint:
        new = endpoint.refresh(session)
    assert new.access_token.startswith("acc-1-")
    assert server.presented == [session.refresh_token]


def test_connection_refused_is_transient() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        endpoint = TokenEndpoint(f"http://127.0.0.1:{port}/t", "c", 2.0)
        with endpoint, pytest.raises(TransientRefreshError) as info:
            endpoint.refresh(make_session())
    assert info.value.kind == "transport"


def test_slow_endpoint_is_bounded_by_max_hold(tmp_path: pathlib.Path) -> None:
    """AUTH-24: endpoint delayed 3 s, max_hold=1 → released within 1.5 s, session kept."""
    srv = TokenServer(delay_s=3.0)
    try:
        store = SessionStore(tmp_path / "auth")
        session = make_session(ttl_s=-1, now=dt.datetime.now(dt.UTC))
        store.write(session)
        before = store.path.read_bytes()
        with TokenEndpoint(srv.url, "c", 10.0) as endpoint:
            result = run_refresh_transaction(
                store, session, endpoint, tmp_path / "auth" / "refresh.lock", max_hold=1.0
            )
        assert result.outcome is RefreshOutcome.TRANSIENT_ERROR_PRESERVED
        assert result.error_kind == "timeout"
        assert result.held_s <= 1.5  # a safety bound (AUTH-24), not a speed target
        assert store.path.read_bytes() == before
    finally:
        srv.close()


class TrickleServer:
    """A real 127.0.0.1 server that answers one byte every 200 ms: every single read succeeds
    well inside httpx's per-phase timeout, so only a whole-request deadline can stop it.

    ``phase="headers"`` trickles from the status line on; ``phase="body"`` sends complete
    headers at once and trickles the body. The trickle is bounded (then the server goes silent
    until closed), so a client without a whole-request deadline is slow, never hung.
    """

    BYTE_EVERY_S = 0.2
    MAX_BYTES = 20

    def __init__(self, phase: str) -> None:
        import socket
        import threading

        self.phase = phase
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/oauth/token"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # closed before any client came
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)  # the request (small; one read is enough on loopback)
                body = b'{"access_token": "late", "expires_in": 60}' + b" " * 200
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                if self.phase == "body":
                    conn.sendall(head)
                    payload = body
                else:
                    payload = head + body
                for i in range(min(self.MAX_BYTES, len(payload))):
                    conn.sendall(payload[i : i + 1])
                    if self.stop.wait(self.BYTE_EVERY_S):
                        return
                self.stop.wait(30)  # silent, connection open, until the test ends
            except OSError:
                return  # the client hung up: expected once its deadline fires

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(10)


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_trickling_endpoint_is_bounded_by_max_hold(tmp_path: pathlib.Path, phase: str) -> None:
    """AUTH-24 against a server that trickles one byte every 200 ms (per-phase timeouts never
    fire): the whole request is cut at the hold deadline and the session is kept."""
    srv = TrickleServer(phase)
    try:
        store = SessionStore(tmp_path / "auth")
        session = make_session(ttl_s=-1, now=dt.datetime.now(dt.UTC))
        store.write(session)
        before = store.path.read_bytes()
        with TokenEndpoint(srv.url, "c", 10.0) as endpoint:
            result = run_refresh_transaction(
                store, session, endpoint, tmp_path / "auth" / "refresh.lock", max_hold=1.0
            )
        assert result.outcome is RefreshOutcome.TRANSIENT_ERROR_PRESERVED
        assert result.error_kind == "timeout"
        assert result.held_s <= 1.5  # a safety bound (AUTH-24), not a speed target
        assert store.path.read_bytes() == before
    finally:
        srv.close()


def test_a_connection_made_after_the_deadline_is_cut_at_once() -> None:
    """A connect cannot be interrupted; if it completes after the deadline, the socket is shut
    down as soon as httpcore reports it (unit seam: the trace callback, a real socket pair)."""
    import socket

    from kitty_auth_refresh._endpoint import _Deadline

    class Stream:
        def __init__(self, sock: socket.socket) -> None:
            self.sock = sock

        def get_extra_info(self, name: str) -> object:
            return self.sock if name == "socket" else None

    ours, peer = socket.socketpair()
    with ours, peer:
        peer.settimeout(10)
        deadline = _Deadline(0.001)
        with deadline:
            deadline._timer.join(10)  # the budget is spent before the connection exists
            fired_on_expiry = deadline.fired  # nothing was in flight to cut
            deadline.trace("connection.connect_tcp.started", {})
            deadline.trace("connection.connect_tcp.complete", {"return_value": Stream(ours)})
        assert (fired_on_expiry, deadline.fired) == (False, True)
        assert peer.recv(1) == b""  # our side was shut down: the peer sees end-of-stream


@pytest.mark.parametrize("code", [200, 400, 503])
def test_undecodable_body_is_a_protocol_error_naming_the_status(
    endpoint_for: EndpointFor, code: int
) -> None:
    """A body that cannot be decoded (gzip announced, garbage sent) is one typed,
    non-destructive error - never a raw httpx exception escaping the transaction."""

    def garbled(request: httpx.Request) -> httpx.Response:
        # A raw stream, as a real transport hands it over: decoding happens in the client.
        garbage = httpx.ByteStream(b"not gzip")
        return httpx.Response(code, headers={"Content-Encoding": "gzip"}, stream=garbage)

    with pytest.raises(RefreshProtocolError) as info:
        endpoint_for(Script([garbled])).refresh(make_session())
    assert info.value.status == code
    assert "could not be decoded" in str(info.value)


def test_undecodable_body_keeps_the_session(
    endpoint_for: EndpointFor, store: SessionStore, lock_path: pathlib.Path
) -> None:
    def garbled(request: httpx.Request) -> httpx.Response:
        garbage = httpx.ByteStream(b"not gzip")
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=garbage)

    session = make_session(ttl_s=-1)
    store.write(session)
    before = store.path.read_bytes()
    result = run_refresh_transaction(store, session, endpoint_for(Script([garbled])), lock_path)
    assert result.outcome is RefreshOutcome.TRANSIENT_ERROR_PRESERVED
    assert result.error_kind == "protocol"
    assert store.path.read_bytes() == before
