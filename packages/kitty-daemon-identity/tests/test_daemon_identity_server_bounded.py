"""Issue 10: a bounded DaemonServer stays answerable under ~1000 trickling (slowloris) clients."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kitty_daemon_identity import _server

SLOW_CONNECTIONS = 1100  # more than the server's fd limit: an unbounded server hits EMFILE
FD_LIMIT = 1024
HEALTH_WITHIN_S = 3 * _server.REQUEST_DEADLINE_SECONDS + 5.0

SERVER_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))
from kitty_daemon_identity import DaemonServer
srv = DaemonServer("sync", 0, sys.argv[1], package_version="0.1.0", hard_exit_after_retire=False)
print(srv.port, flush=True)
srv.serve_forever()
"""


def _health(port: int, timeout_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _health_answers(port: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if _health(port, 1.0).startswith(b"HTTP/1.0 200"):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_NOFILE is POSIX")
def test_health_answers_under_1000_trickling_connections(tmp_path: Path) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < SLOW_CONNECTIONS + 100:
        pytest.skip("this process cannot open enough client sockets")
    if soft != resource.RLIM_INFINITY and soft < SLOW_CONNECTIONS + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (SLOW_CONNECTIONS + 100, hard))
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT.format(limit=FD_LIMIT), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    slow: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        for _ in range(SLOW_CONNECTIONS):
            s = socket.socket()
            s.settimeout(2.0)
            try:
                s.connect(("127.0.0.1", port))
                s.send(b"GET /api/health HTTP/1.1\r\n")  # and never finish the headers
            except OSError:
                s.close()
                continue
            slow.append(s)
        stop = threading.Event()

        def trickle() -> None:  # one header byte per connection per second, never a full request
            while not stop.wait(1.0):
                for s in slow:
                    with contextlib.suppress(OSError):
                        s.send(b"X")

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            assert _health_answers(port, HEALTH_WITHIN_S)
        finally:
            stop.set()
            trickler.join(10)
        assert proc.poll() is None  # the server neither crashed nor ran out of fds
    finally:
        for s in slow:
            s.close()
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_full_server_drops_its_slowest_sender_for_a_whole_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitty_daemon_identity import DaemonServer

    monkeypatch.setattr(_server, "MAX_CONNECTIONS", 1)
    monkeypatch.setattr(_server, "REQUEST_DEADLINE_SECONDS", 30.0)  # only eviction can help
    srv = DaemonServer("sync", 0, tmp_path, package_version="0.1.0", hard_exit_after_retire=False)
    srv.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5.0) as slow:
            slow.send(b"GET /api/health HTTP/1.1\r\n")  # holds the only slot
            time.sleep(0.05)
            # A whole request arrives: the slow sender is dropped and the request is served,
            # long before the slow one's deadline.
            assert _health(srv.port, 5.0).startswith(b"HTTP/1.0 200")
            assert slow.recv(1) == b""
    finally:
        srv.close()


def test_slow_sender_is_dropped_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitty_daemon_identity import DaemonServer

    monkeypatch.setattr(_server, "REQUEST_DEADLINE_SECONDS", 0.3)
    srv = DaemonServer("sync", 0, tmp_path, package_version="0.1.0", hard_exit_after_retire=False)
    srv.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5.0) as slow:
            slow.send(b"GET /api/health HTTP/1.1\r\n")
            assert slow.recv(1) == b""  # dropped at the deadline (recv's 5 s cap: a hang cap)
    finally:
        srv.close()
