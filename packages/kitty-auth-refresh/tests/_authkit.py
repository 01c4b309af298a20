"""Test kit for kitty-auth-refresh: a fake clock, scripted token endpoints, session factories.

Imported by the test modules (conftest puts this folder on sys.path; the name is unique in the
repository because pytest runs in importlib mode)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from kitty_auth_refresh import Clock, Session

T0 = dt.datetime(2030, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
TOKEN_URL = "http://127.0.0.1:9/oauth/token"


class FakeClock:
    """Monotonic and wall time that move only when told (or when someone 'sleeps')."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = T0
        self.sleeps: list[float] = []

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += dt.timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def clock(self) -> Clock:
        return Clock(monotonic=lambda: self.mono, now=lambda: self.wall, sleep=self.sleep)


def marker(kind: str) -> str:
    """A random token value that a leak grep can find anywhere it escapes to."""
    return f"{kind}-MARK{secrets.token_hex(8)}"


def make_session(
    *,
    session_id: str = "sess-1",
    ttl_s: float = 3600.0,
    lifetime_s: float | None = None,
    now: dt.datetime = T0,
    **changes: Any,
) -> Session:
    lifetime = lifetime_s if lifetime_s is not None else max(ttl_s, 1.0)
    expires = now + dt.timedelta(seconds=ttl_s)
    fields: dict[str, Any] = {
        "session_id": session_id,
        "access_token": marker("acc"),
        "refresh_token": marker("ref"),
        "access_expires_at": expires,
        "issued_at": expires - dt.timedelta(seconds=lifetime),
        "subject": "user-1",
        "email": "a@example.com",
    }
    fields.update(changes)
    return Session(**fields)


Handler = Callable[[httpx.Request], httpx.Response]


@dataclasses.dataclass
class Script:
    """A scripted token endpoint: one handler per expected request, requests recorded."""

    steps: list[Handler]
    requests: list[httpx.Request] = dataclasses.field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        index = len(self.requests) - 1
        if index >= len(self.steps):
            raise AssertionError(f"unexpected request #{index + 1} to the token endpoint")
        return self.steps[index](request)

    def presented(self) -> list[str]:
        """The refresh tokens presented, in order."""
        out = []
        for request in self.requests:
            form = urllib.parse.parse_qs(request.content.decode())
            out.append(form["refresh_token"][0])
        return out


def ok(
    access: str | None = None, refresh: str | None = None, expires_in: float = 3600, **extra: Any
) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        body: dict[str, Any] = {"access_token": access or marker("acc"), "expires_in": expires_in}
        if refresh != "":
            body["refresh_token"] = refresh or marker("ref")
        body.update(extra)
        return httpx.Response(200, json=body)

    return handler


def status(code: int, body: Any = None, **headers: str) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(code, content=body, headers=headers)
        return httpx.Response(code, json=body, headers=headers)

    return handler


def raises(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def then(action: Callable[[], None], handler: Handler) -> Handler:
    """Run ``action`` (e.g. another process writing the store) while the request is in flight."""

    def wrapped(request: httpx.Request) -> httpx.Response:
        action()
        return handler(request)

    return wrapped


def refresh_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The AUTH-26 lines captured so far."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kitty_auth_refresh"
        and r.levelno == logging.INFO
        and r.getMessage().startswith("refresh ")
    ]


class TokenServer:
    """A tiny real token endpoint on 127.0.0.1 (stdlib only) that rotates on every refresh.

    ``delay_s`` holds each answer back (on an Event, so teardown never waits it out);
    ``presented`` records every refresh token received.
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        import http.server
        import json
        import threading

        self.delay_s = delay_s
        self.presented: list[str] = []
        self.issued: list[str] = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                outer.presented.append(form["refresh_token"][0])
                if outer.delay_s:
                    outer.release.wait(outer.delay_s)
                n = len(outer.presented)
                access, refresh = f"acc-{n}-{marker('srv')}", f"ref-{n}-{marker('srv')}"
                outer.issued += [access, refresh]
                body = json.dumps(
                    {"access_token": access, "refresh_token": refresh, "expires_in": 3600}
                ).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout): that is the point of the test

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/oauth/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


class ApiServer:
    """A real loopback OAuth server and protected API (stdlib, one thread per request).

    ``POST /oauth/token``: the refresh grant rotates both tokens (``refreshes`` records each
    presented refresh token; ``token_answer`` scripts a failure instead), the
    ``authorization_code`` grant answers a first login. ``/api/...`` (any method) answers 200
    ``{"body": <bytes received>}`` to an access token in ``accepted``, else 401; ``calls``
    records (token, body) of every API request. ``gate_401s=N`` holds the first N refusals
    until all N have arrived (on a barrier with a cap), so N requests are refused together.
    ``on_api`` runs with the presented token before the answer (e.g. another process rotates).
    """

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        self.accepted: set[str] = set()
        self.refreshes: list[str] = []
        self.issued: list[str] = []
        self.calls: list[tuple[str, bytes]] = []
        self.token_answer: tuple[int, dict[str, Any]] | None = None
        self.reject_all = False
        self.on_api: Callable[[str], None] | None = None
        self._gate: threading.Barrier | None = None
        self._gated = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def _send(self, code: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if code == 401:
                    self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                if self.path.startswith("/api/"):
                    self.do_GET()
                    return
                form = urllib.parse.parse_qs(self._body().decode())
                code, doc = outer.token_request(form)
                self._send(code, doc)

            def do_GET(self) -> None:
                body = self._body()
                header = self.headers.get("Authorization", "")
                token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
                code, doc = outer.api_request(token, body)
                self._send(code, doc)

            do_PUT = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.token_url = f"{self.url}/oauth/token"
        # A short poll: shutdown() waits up to one interval, at every test's teardown.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def gate_401s(self, parties: int) -> None:
        import threading

        self._gate = threading.Barrier(parties, timeout=20)  # a hang cap, not a timing
        self._gated = parties

    def issue(self) -> dict[str, Any]:
        """A fresh token pair the API accepts (what a login or a refresh hands out)."""
        access, refresh = marker("srv-acc"), marker("srv-ref")
        with self._lock:
            self.issued += [access, refresh]
            self.accepted.add(access)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": 3600,
        }

    def token_request(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", [""])[0]
        if grant == "authorization_code":
            return 200, {**self.issue(), "scope": "openid offline_access"}
        with self._lock:
            self.refreshes.append(form["refresh_token"][0])
        if self.token_answer is not None:
            return self.token_answer
        return 200, self.issue()

    def api_request(self, token: str, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append((token, body))
        if self.on_api is not None:
            self.on_api(token)
        with self._lock:
            ok = token in self.accepted and not self.reject_all
            gate = self._gate if not ok and self._gated > 0 else None
            if gate is not None:
                self._gated -= 1
        if gate is not None:
            gate.wait()
        return (200, {"body": len(body)}) if ok else (401, {"error": "invalid_token"})

    def close(self) -> None:
        if self._gate is not None:
            self._gate.abort()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
