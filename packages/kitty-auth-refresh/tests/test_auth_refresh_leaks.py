"""AUTH-27: no token value (whole, partial or hashed) in any log record, message, repr or pickle.

Every scenario uses random marker tokens; all loggers are captured at DEBUG (httpx and httpcore
included, with a real loopback server), and every result and error is rendered every way it can
be rendered. Then one grep over everything.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import pickle
import traceback
from collections.abc import Callable, Iterator

import httpx
import pytest

from _authkit import FakeClock, Script, TokenServer, make_session, ok, raises, status, then
from kitty_auth_refresh import (
    KittyAuthError,
    Session,
    SessionStore,
    StoreWriteFailed,
    SyncTokenManager,
    TokenEndpoint,
    auth_status,
    run_refresh_transaction,
)

EndpointFor = Callable[..., TokenEndpoint]


class Evidence:
    """Everything a user or operator could ever see, and every token that was in play."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.blobs: list[bytes] = []
        self.tokens: set[str] = set()

    def session(self, session: Session | None) -> Session | None:
        if session is not None:
            self.tokens.update((session.access_token, session.refresh_token))
            self.texts += [repr(session), str(session)]
        return session

    def error(self, error: BaseException) -> None:
        self.texts += [str(error), repr(error), "".join(traceback.format_exception_only(error))]
        if isinstance(error, KittyAuthError):
            self.blobs.append(pickle.dumps(error))
        if isinstance(error, StoreWriteFailed):
            self.session(error.session)

    def forbidden(self, token: str) -> list[str]:
        # The whole token, its random half, and its common hashes.
        _, _, secret = token.rpartition("MARK")
        digest = hashlib.sha256(token.encode()).hexdigest()
        return [token, secret, secret[:8], digest, digest[:8]]


@pytest.fixture
def evidence(caplog: pytest.LogCaptureFixture) -> Iterator[Evidence]:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "kitty_auth_refresh"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    found = Evidence()
    yield found
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = caplog.get_records("setup") + caplog.get_records("call")
    for record in records:
        text = formatter.format(record)
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        found.texts.append(text)
    assert records, "nothing was logged: the grep would prove nothing"
    haystack = "\n".join(found.texts)
    blob = b"\n".join(found.blobs)
    leaks = [
        needle
        for token in found.tokens
        for needle in found.forbidden(token)
        if needle in haystack or needle.encode() in blob
    ]
    assert leaks == []


def test_no_token_escapes_from_any_scenario(
    evidence: Evidence,
    store: SessionStore,
    lock_path: pathlib.Path,
    fake_clock: FakeClock,
    endpoint_for: EndpointFor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def run(handlers: list[Callable[[httpx.Request], httpx.Response]]) -> None:
        session = evidence.session(make_session(ttl_s=-1, now=fake_clock.wall))
        assert session is not None
        store.write(session)
        try:
            result = run_refresh_transaction(
                store, session, endpoint_for(Script(handlers)), lock_path, clock=fake_clock.clock()
            )
        except KittyAuthError as exc:
            evidence.error(exc)
            return
        evidence.session(result.session)
        evidence.texts += [str(result), repr(result)]

    def echoing(code: int, error: str) -> Callable[[httpx.Request], httpx.Response]:
        # A hostile server that echoes the presented token back in every text field.
        def handler(request: httpx.Request) -> httpx.Response:
            token = request.content.decode().split("refresh_token=")[1].split("&")[0]
            return httpx.Response(
                code, json={"error": error, "error_description": f"bad token {token}"}
            )

        return handler

    run([ok()])
    run([echoing(400, "invalid_grant")])
    run([echoing(401, "session_invalid")])
    run([echoing(409, "refresh_replay_benign_retry")])
    run([echoing(409, "other")])
    run([echoing(503, "x")])
    run([echoing(418, "teapot")])
    run([raises(httpx.ConnectError("refused"))])
    run([status(200, b"not json")])
    peer = evidence.session(make_session(now=fake_clock.wall))
    assert peer is not None
    run([then(lambda: store.write(peer), echoing(400, "invalid_grant"))])

    def fail_replace(*args: object) -> None:
        raise OSError(28, "No space left on device")

    run([then(lambda: monkeypatch.setattr("os.replace", fail_replace), ok())])
    monkeypatch.undo()

    evidence.texts.append(repr(auth_status(store)))


def test_no_token_escapes_over_a_real_socket_and_the_manager(
    evidence: Evidence, store: SessionStore
) -> None:
    server = TokenServer()
    try:
        import datetime as dt

        session = evidence.session(make_session(ttl_s=5, now=dt.datetime.now(dt.UTC)))
        assert session is not None
        with TokenEndpoint(server.url, "kitty-cli") as endpoint:
            manager = SyncTokenManager(store, endpoint, jitter=0.0)
            manager.save_login(session)
            manager.get_access_token()
            manager.refresh_if_needed(force=True)
            evidence.session(manager.session)
            manager.logout()
        evidence.tokens.update(server.issued)
        assert server.issued  # the grep covers tokens minted by the server too
    finally:
        server.close()
