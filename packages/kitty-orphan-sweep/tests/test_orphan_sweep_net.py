"""Loopback probes: concurrent connects, and the bounded HTTP client against hostile servers."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _orphan_sweep_helpers import PORT_BASE, CountingListener, SuspectListener
from kitty_daemon_identity import ConnectState
from kitty_orphan_sweep._net import (
    HttpOutcome,
    HttpRequest,
    HttpResult,
    _complete,
    _dechunk,
    _parse_head,
    can_bind,
    connect_probe,
    http_exchange,
    http_exchange_many,
    port_refuses,
)

PORT_A, PORT_B, PORT_C = PORT_BASE + 180, PORT_BASE + 181, PORT_BASE + 182
HANG_CAP_S = 20.0  # generous: only a client that never returns trips it


class ScriptedServer:
    """Accepts connections and answers each with `reply(request_bytes)` (None = stay silent)."""

    def __init__(self, port: int, reply: Callable[[bytes], bytes | None]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.reply = reply
        self.requests: list[bytes] = []
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            conn.settimeout(2)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                continue
            self.requests.append(data)
            answer = self.reply(data)
            if answer is not None:
                try:
                    conn.sendall(answer)
                finally:
                    conn.close()

    def close(self) -> None:
        # shutdown() wakes the blocked accept() (close() alone would leave the port listening).
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(timeout=5)


Serve = Callable[[int, Callable[[bytes], bytes | None]], "ScriptedServer"]


@pytest.fixture
def serve() -> Iterator[Callable[[int, Callable[[bytes], bytes | None]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(port: int, reply: Callable[[bytes], bytes | None]) -> ScriptedServer:
        servers.append(ScriptedServer(port, reply))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _http(status: int, body: bytes, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_connect_probe_reports_open_and_suspect_and_omits_free(serve: Serve) -> None:
    serve(PORT_A, lambda _: None)
    hung = SuspectListener(PORT_B)
    try:
        states = connect_probe([PORT_A, PORT_B, PORT_C], 0.2)
    finally:
        hung.close()
    assert states == {PORT_A: ConnectState.OPEN, PORT_B: ConnectState.SUSPECT}


def test_port_refuses_and_can_bind_track_a_listener() -> None:
    assert port_refuses(PORT_A, 0.1)
    assert can_bind(PORT_A)
    listener = CountingListener(PORT_A)
    try:
        assert not port_refuses(PORT_A, 0.1)
        assert not can_bind(PORT_A)
    finally:
        listener.close()


def test_response_with_content_length_is_returned_and_request_is_well_formed(serve: Serve) -> None:
    server = serve(PORT_A, lambda _: _http(200, b'{"a":1}'))
    result = http_exchange(HttpRequest(PORT_A, "GET", "/api/health", {"Accept": "x"}), 1.0)
    assert (result.outcome, result.status, result.body) == (HttpOutcome.RESPONSE, 200, b'{"a":1}')
    request = server.requests[0]
    assert request.startswith(b"GET /api/health HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{PORT_A}\r\n".encode() in request


def test_chunked_body_is_decoded(serve: Serve) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    serve(PORT_A, lambda _: raw)
    result = http_exchange(HttpRequest(PORT_A, "GET", "/", {}), 1.0)
    assert result.body == b"abcde"


def test_malformed_chunked_body_is_non_http(serve: Serve) -> None:
    serve(PORT_A, lambda _: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert http_exchange(HttpRequest(PORT_A, "GET", "/", {}), 1.0).outcome is HttpOutcome.NON_HTTP


def test_body_read_is_capped_one_byte_past_the_limit(serve: Serve) -> None:
    serve(PORT_A, lambda _: _http(200, b"x" * 300_000))
    result = http_exchange(HttpRequest(PORT_A, "GET", "/", {}), 2.0, body_cap=1000)
    assert result.truncated
    assert result.body is not None
    assert len(result.body) == 1001


def test_garbage_and_empty_replies_are_non_http(serve: Serve) -> None:
    serve(PORT_A, lambda _: b"SSH-2.0-OpenSSH\r\n")
    serve(PORT_B, lambda _: b"")
    results = http_exchange_many(
        [HttpRequest(PORT_A, "GET", "/", {}), HttpRequest(PORT_B, "GET", "/", {})], 1.0
    )
    assert results[PORT_A].outcome is HttpOutcome.NON_HTTP
    assert results[PORT_A].error == "not_http"
    assert results[PORT_B].error == "empty_response"


def test_silent_server_times_out_and_refused_port_is_refused(serve: Serve) -> None:
    serve(PORT_A, lambda _: None)
    results = http_exchange_many(
        [HttpRequest(PORT_A, "GET", "/", {}), HttpRequest(PORT_C, "GET", "/", {})], 0.3
    )
    assert results[PORT_A].outcome is HttpOutcome.TIMEOUT
    assert results[PORT_C].outcome is HttpOutcome.REFUSED


def test_oversized_header_block_is_non_http(serve: Serve) -> None:
    serve(PORT_A, lambda _: b"HTTP/1.1 200 OK\r\nX: " + b"y" * 40_000)
    result = http_exchange(HttpRequest(PORT_A, "GET", "/", {}), 1.0)
    assert (result.outcome, result.error) == (HttpOutcome.NON_HTTP, "header_too_large")


def test_complete_head_with_short_body_at_deadline_is_a_response(serve: Serve) -> None:
    holder: list[ScriptedServer] = []

    def partial(_: bytes) -> bytes | None:
        # A head promising more body than ever arrives, on a connection that stays open.
        holder[0].conns[-1].sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 100\r\n\r\nabc")
        return None

    holder.append(serve(PORT_A, partial))
    result = http_exchange(HttpRequest(PORT_A, "GET", "/", {}), 0.3)
    assert (result.outcome, result.status) == (HttpOutcome.RESPONSE, 404)


def _exchange_with_cap(port: int) -> HttpResult:
    """http_exchange on a worker thread, so a decoder that never terminates fails, not hangs."""
    box: list[HttpResult] = []
    worker = threading.Thread(
        target=lambda: box.append(http_exchange(HttpRequest(port, "GET", "/", {}), 1.0)),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=HANG_CAP_S)
    assert not worker.is_alive(), "the HTTP client never returned"
    return box[0]


@pytest.mark.parametrize(
    "chunks",
    [
        b"-f1\r\n-f\r\n 2 fa\r\n-",  # negative size: used to walk the decoder backwards forever
        b"+3\r\nabc\r\n0\r\n\r\n",
        b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
        b"\xb2\r\nx\r\n0\r\n\r\n",
    ],
)
def test_hostile_chunk_sizes_are_non_http_and_never_hang(serve: Serve, chunks: bytes) -> None:
    serve(PORT_A, lambda _: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    result = _exchange_with_cap(PORT_A)
    assert (result.outcome, result.error) == (HttpOutcome.NON_HTTP, "bad_chunked_body")


def test_non_ascii_digits_in_status_or_length_are_not_numbers(serve: Serve) -> None:
    # latin-1 decodes 0xB2 to "²", which str.isdigit() accepts and int() rejects.
    serve(PORT_A, lambda _: b"HTTP/1.1 \xb2 OK\r\nContent-Length: 2\r\n\r\nhi")
    serve(PORT_B, lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nhi")
    assert _exchange_with_cap(PORT_A).outcome is HttpOutcome.NON_HTTP
    result = _exchange_with_cap(PORT_B)
    assert (result.outcome, result.status, result.body) == (HttpOutcome.RESPONSE, 200, b"hi")


_WIRE = st.lists(
    st.sampled_from([b"\r\n", b"-", b"+", b"_", b"0", b"1", b"f", b"a", b" ", b";", b"\xb2"]),
    max_size=24,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(_WIRE, _WIRE)
def test_response_parsing_is_total_on_hostile_bytes(head_tail: bytes, body: bytes) -> None:
    for raw in (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
        b"HTTP/1.1 200 OK\r\nContent-Length: " + head_tail + b"\r\n\r\n" + body,
        b"HTTP/1.1 " + head_tail + b"\r\n\r\n" + body,
    ):
        _complete(raw)
        decoded = _dechunk(body)
        assert decoded is None or len(decoded) <= len(body)
        _parse_head(raw)


def test_one_connect_state_one_health_cap_one_start_time_tolerance() -> None:
    """Issue 12: the probe speaks the classifier's ConnectState (no copy to convert from), reads
    at most the health parser's cap, and the escalation's tolerance is kitty-filelock's."""
    import kitty_daemon_identity as kdi
    import kitty_filelock
    from kitty_orphan_sweep import _constants

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))  # an ephemeral port: clear of every test port window
        listener.listen(1)
        port = listener.getsockname()[1]
        states = connect_probe([port], 1.0)
    assert states == {port: kdi.ConnectState.OPEN}
    assert type(states[port]) is kdi.ConnectState
    assert http_exchange_many.__kwdefaults__ == {"body_cap": kdi.HEALTH_MAX_BYTES}
    assert not hasattr(_constants, "HEALTH_BODY_CAP_BYTES")
    assert _constants.START_TIME_TOLERANCE_S is kitty_filelock.START_TIME_TOLERANCE_S
