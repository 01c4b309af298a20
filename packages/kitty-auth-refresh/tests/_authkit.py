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
