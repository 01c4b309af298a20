"""The raw loopback HTTP probe: every failure is an answer, never an exception or a hang."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from kitty_doctor._probe import http_request

PORT = 20595  # inside this package's 20400-20599 block, outside the test families' ranges


@pytest.fixture
def server() -> Iterator[Callable[[Callable[[socket.socket], None]], None]]:
    """A one-connection loopback server whose behaviour each test supplies."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", PORT))
    sock.listen(4)
    threads: list[threading.Thread] = []
    release = threading.Event()

    def start(behaviour: Callable[[socket.socket], None]) -> None:
        def serve() -> None:
            conn, _ = sock.accept()
            with conn:
                behaviour(conn)
                release.wait(5)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)

    try:
        yield start
    finally:
        release.set()
        for thread in threads:
            thread.join(timeout=5)
        sock.close()


def test_refused() -> None:
    reply = http_request(PORT, "GET", "/api/health")
    assert (reply.status, reply.error) == (None, "refused")


def test_ok_reply_and_request_shape(server: Callable[..., None]) -> None:
    seen: list[bytes] = []

    def answer(conn: socket.socket) -> None:
        seen.append(conn.recv(4096))
        conn.sendall(b'HTTP/1.0 202 Accepted\r\nX: y\r\n\r\n{"status":"stopping"}')
        conn.shutdown(socket.SHUT_WR)

    server(answer)
    reply = http_request(
        PORT, "POST", "/api/shutdown", body=b"{}", headers=(("Content-Type", "application/json"),)
    )
    assert reply.status == 202
    assert reply.body == b'{"status":"stopping"}'
    assert reply.error is None
    request = seen[0]
    assert request.startswith(b"POST /api/shutdown HTTP/1.0\r\n")
    assert f"Host: 127.0.0.1:{PORT}".encode() in request
    assert b"Content-Length: 2\r\n" in request
    assert request.endswith(b"\r\n\r\n{}")


@pytest.mark.parametrize(
    "payload", [b"SSH-2.0-OpenSSH_9.6\r\n", b"HTTP/1.0 abc OK\r\n\r\n", b"HTTP/1.0 200 OK\r\n"]
)
def test_not_http(server: Callable[..., None], payload: bytes) -> None:
    def answer(conn: socket.socket) -> None:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)

    server(answer)
    reply = http_request(PORT, "GET", "/api/health")
    assert (reply.status, reply.error) == (None, "not an HTTP response")


def test_silent_listener_times_out(server: Callable[..., None]) -> None:
    server(lambda conn: None)  # accepts, never answers
    reply = http_request(PORT, "GET", "/api/health", timeout_s=0.2)
    assert (reply.status, reply.error) == (None, "timeout")


def test_slow_drip_is_cut_at_the_deadline(server: Callable[..., None]) -> None:
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\n")
        for _ in range(100):  # bounded: at most ~5 s, the probe gives up long before
            if stop.wait(0.05):
                return
            try:
                conn.sendall(b"X-Pad: 1\r\n")
            except OSError:
                return

    server(drip)
    try:
        reply = http_request(PORT, "GET", "/api/health", timeout_s=0.3)
    finally:
        stop.set()
    assert reply.error == "timeout"
