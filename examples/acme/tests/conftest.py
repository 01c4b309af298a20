"""acme's test fixtures: a private home, a private port block and acme's own OAuth server."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

BIN = Path(sys.executable).parent
HANG_CAP_S = 60.0


@dataclass
class AcmeServer:
    """acme's OAuth token endpoint and API: password grant, rotating refresh tokens, /me."""

    access: set[str] = field(default_factory=set)
    refresh: set[str] = field(default_factory=set)
    refreshes: int = 0
    url: str = ""

    def issue(self) -> dict[str, object]:
        access, refresh = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self.access.add(access)
        self.refresh.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": 3600,
            "token_type": "Bearer",
        }


def _handler(state: AcmeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _send(self, status: int, obj: object) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            grant = form.get("grant_type")
            if grant == "password" and form.get("password") == "right":
                self._send(200, state.issue())
            elif grant == "refresh_token" and form.get("refresh_token") in state.refresh:
                state.refresh.discard(form["refresh_token"])  # rotation
                state.refreshes += 1
                self._send(200, state.issue())
            else:
                self._send(400, {"error": "invalid_grant"})

        def do_GET(self) -> None:
            bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if self.path == "/api/me" and bearer in state.access:
                self._send(200, {"user": "wile"})
            else:
                self._send(401, {"error": "invalid_token"})

    return Handler


@pytest.fixture
def acme_server() -> Iterator[AcmeServer]:
    state = AcmeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _free_block(size: int = 8) -> range:
    for start in range(25400, 26400, size):
        taken = False
        for port in range(start, start + size):
            with socket.socket() as sock:
                taken = sock.connect_ex(("127.0.0.1", port)) == 0
            if taken:
                break
        if not taken:
            return range(start, start + size)
    raise RuntimeError("no free block of 8 ports in 25400-26400")


@dataclass
class Acme:
    """Runs the installed ``acme`` with a clean environment: only acme's variables set."""

    home: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BIN / "acme"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=HANG_CAP_S,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"acme {args} exited {done.returncode}: {done.stderr}")
        return done


@pytest.fixture
def acme(tmp_path: Path, acme_server: AcmeServer) -> Iterator[Acme]:
    home = tmp_path / "acme-home"
    block = _free_block()
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "ACME_HOME": str(home),
        "ACME_SYNC_PORTS": f"{block.start}-{block.stop}",
        "ACME_TOKEN_URL": f"{acme_server.url}/oauth/token",
        "ACME_API_URL": f"{acme_server.url}/api",
        "COLUMNS": "100",
    }
    runner = Acme(home, env)
    try:
        yield runner
    finally:
        _stop_daemons(home)


def _stop_daemons(home: Path) -> None:
    """Kill whatever daemon acme started under this home (by its root marker)."""
    marker = f"--acme-daemon-root={(home / 'daemon').resolve()}"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGKILL)
