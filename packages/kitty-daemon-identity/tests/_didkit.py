"""Test helpers: free ports in this package's sub-range, raw HTTP requests, daemon subprocesses."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

TEST_PORTS: Final = range(20100, 20200)  # this package's isolated sub-range
HANG_CAP_S: Final = 20.0  # a generous cap so a broken build fails instead of hanging


def _socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Same policy as the daemon: on Linux a port whose old connections sit in TIME_WAIT is
    # bindable (our own requests leave many), while a LISTENING socket still blocks it.
    if sys.platform.startswith("linux"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def port_is_free(port: int) -> bool:
    with _socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def listener(port: int) -> socket.socket:
    """A plain socket LISTENING on ``port`` (blocks daemons from binding it)."""
    s = _socket()
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
    except BaseException:
        s.close()
        raise
    return s


def free_port(exclude: Sequence[int] = ()) -> int:
    ports = [p for p in TEST_PORTS if p not in exclude]
    random.shuffle(ports)
    for port in ports:
        if port_is_free(port):
            return port
    raise RuntimeError("no free port in 20100-20199")


def free_block(n: int) -> tuple[int, int]:
    """``[start, start+n)`` fully free inside the test range (for KITTY_*_PORTS overrides)."""
    starts = list(range(TEST_PORTS.start, TEST_PORTS.stop - n + 1))
    random.shuffle(starts)
    for start in starts:
        if all(port_is_free(p) for p in range(start, start + n)):
            return start, start + n
    raise RuntimeError(f"no {n} consecutive free ports in 20100-20199")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    *,
    host: str | None = "default",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = HANG_CAP_S,
) -> Response:
    """One HTTP request with full control over the Host header (``host=None`` omits it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host == "default":
            conn.putheader("Host", f"127.0.0.1:{port}")
        elif host is not None:
            conn.putheader("Host", host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def shutdown(port: int, token: str | None, **kw: Any) -> Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return request(port, "POST", "/api/shutdown", headers=headers, body=b"{}", **kw)


def _pump(stream: TextIO, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


@dataclass
class Daemon:
    """A reference daemon subprocess with its announced port and line queues for stdout/stderr."""

    proc: subprocess.Popen[str]
    port: int
    out: queue.Queue[str | None]
    err: queue.Queue[str | None]
    err_seen: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_err(self, needle: str, count: int = 1, timeout: float = HANG_CAP_S) -> None:
        """Block until ``needle`` has appeared in ``count`` stderr lines (a pipe barrier)."""
        found = sum(needle in line for line in self.err_seen)
        while found < count:
            line = self.err.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"daemon exited before {needle!r}: {self.err_seen[-5:]}")
            self.err_seen.append(line)
            found += needle in line

    def stderr_text(self) -> str:
        with contextlib.suppress(queue.Empty):
            while True:
                line = self.err.get_nowait()
                if line is None:
                    break
                self.err_seen.append(line)
        return "".join(self.err_seen)


class ProcSet:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def popen(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ if env is None else env),
        )
        self.procs.append(proc)
        return proc

    def daemon(
        self, *args: str, env: Mapping[str, str] | None = None, expect_ready: bool = True
    ) -> Daemon:
        proc = self.popen([sys.executable, "-m", "kitty_daemon_identity", *args], env=env)
        out: queue.Queue[str | None] = queue.Queue()
        err: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        assert proc.stderr is not None
        threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True).start()
        threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True).start()
        d = Daemon(proc, 0, out, err)
        if expect_ready:
            line = out.get(timeout=HANG_CAP_S)
            if line is None:
                proc.wait(timeout=HANG_CAP_S)
                raise AssertionError(f"daemon exited {proc.returncode}: {d.stderr_text()}")
            words = line.split()
            assert words[0] == "LISTENING", line
            assert words[2] == f"pid={proc.pid}", line
            host, _, port = words[1].rpartition(":")
            assert host == "127.0.0.1", line
            d.port = int(port)
        return d

    def sleeper(self) -> subprocess.Popen[str]:
        """An unrelated live process (reads stdin until closed)."""
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def reap_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=HANG_CAP_S)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def read_root_key(root: Path) -> str:
    return (root / "scope.key").read_text().strip()
