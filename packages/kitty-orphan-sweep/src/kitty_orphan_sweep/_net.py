"""Loopback socket I/O: concurrent connect probes and a tiny bounded HTTP/1.1 client.

Everything here talks to 127.0.0.1 only, runs every port of a batch concurrently on one
selector (so a phase costs one timeout, not one per port), and never consults proxy settings:
a raw socket has no idea `HTTP_PROXY` exists, which is exactly what loopback traffic needs.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

# The classifier's vocabulary is the probe's result type (one enum, issue 12); the health cap is
# the health parser's (a longer body would only be rejected as too_large after buffering it).
from kitty_daemon_identity import HEALTH_MAX_BYTES, ConnectState
from kitty_filelock import frozen_dataclass, frozen_field

LOOPBACK: Final = "127.0.0.1"
#: A response whose header block exceeds this is not the kind of HTTP we speak.
MAX_HEADER_BYTES: Final = 16384
_RECV_CHUNK: Final = 65536
_CONNECT_PENDING: Final = frozenset(
    {errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EALREADY}
)


class HttpOutcome(StrEnum):
    """Transport-level result of one HTTP exchange (status interpretation is the caller's)."""

    RESPONSE = "response"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    NON_HTTP = "non_http"


@frozen_dataclass
class HttpRequest:
    port: int
    method: str
    path: str
    # Headers and body may carry the scope key (Authorization): never in a repr or a log.
    headers: Mapping[str, str] = frozen_field(repr=False)
    body: bytes = frozen_field(default=b"", repr=False)


@frozen_dataclass
class HttpResult:
    outcome: HttpOutcome
    status: int | None
    body: bytes | None
    error: str | None
    elapsed_ms: float
    truncated: bool = False


def _nonblocking_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    return sock


def connect_probe(ports: Iterable[int], timeout: float) -> dict[int, ConnectState]:
    """Connect to all ports at once: open → OPEN, hung → SUSPECT, refused ports drop out (a
    refused port is free, so it is simply absent from the result).

    A listener that neither accepts nor refuses before the deadline (full backlog, SYN dropped) is
    SUSPECT: it exists, so it is never reported as free.
    """
    results: dict[int, ConnectState] = {}
    pending: dict[socket.socket, int] = {}
    sel = selectors.DefaultSelector()
    try:
        for port in ports:
            sock = _nonblocking_socket()
            code = sock.connect_ex((LOOPBACK, port))
            if code == 0:
                results[port] = ConnectState.OPEN
                sock.close()
            elif code in _CONNECT_PENDING:
                pending[sock] = port
                sel.register(sock, selectors.EVENT_WRITE, sock)
            else:
                # ECONNREFUSED (free) or another immediate error: nobody is listening there.
                sock.close()
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in sel.select(remaining):
                sock = key.data
                port = pending.pop(sock)
                sel.unregister(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    results[port] = ConnectState.OPEN
                elif code != errno.ECONNREFUSED:
                    results[port] = ConnectState.SUSPECT
                sock.close()
        for sock, port in pending.items():
            results[port] = ConnectState.SUSPECT
            sock.close()
    finally:
        sel.close()
        for sock in pending:
            sock.close()
    return results


def port_refuses(port: int, timeout: float) -> bool:
    """True iff a connect to the port is refused within `timeout` (open or hung → False)."""
    return port not in connect_probe([port], timeout)


def _encode_request(req: HttpRequest) -> bytes:
    lines = [f"{req.method} {req.path} HTTP/1.1", f"Host: {LOOPBACK}:{req.port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    lines += [f"Content-Length: {len(req.body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + req.body


class _Exchange:
    """One request's progress through the event loop (mutable, private: a plain class)."""

    __slots__ = ("connected", "done", "error", "out", "outcome", "received", "req", "started")

    def __init__(self, req: HttpRequest, out: bytes, started: float) -> None:
        self.req = req
        self.out = out
        self.started = started
        self.received = bytearray()
        self.connected = False
        self.done = False
        self.outcome: HttpOutcome | None = None
        self.error: str | None = None


#: Chunk sizes are hex digits only: int(x, 16) alone would also take "-f1", "+5" or "1_0", and a
#: negative size walks the decoder backwards forever. 15 hex digits is far past any body cap.
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,15}")
_DECIMAL: Final = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also accepts "²"


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and _DECIMAL.fullmatch(value) else None


def _parse_head(data: bytes) -> tuple[int, dict[str, str], int] | None:
    """(status, lower-cased headers, body offset) or None if this is not an HTTP response head."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not _DECIMAL.fullmatch(parts[1]):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers, end + 4


def _dechunk(raw: bytes) -> bytes | None:
    """Decode a chunked body; None if it is malformed or incomplete."""
    out = bytearray()
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = raw[pos:eol].split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            return None
        size = int(size_text, 16)
        if size == 0:
            return bytes(out)
        start = eol + 2
        if len(raw) < start + size:
            return None
        out += raw[start : start + size]
        pos = start + size + 2


def _complete(data: bytes) -> bool:
    """True once a response with a Content-Length (or a terminated chunked body) is all here."""
    head = _parse_head(data)
    if head is None:
        return False
    _, headers, offset = head
    length = _content_length(headers)
    if length is not None:
        return len(data) - offset >= length
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return data.endswith(b"0\r\n\r\n")
    return False


def _finish(ex: _Exchange, body_cap: int) -> HttpResult:
    elapsed_ms = (time.monotonic() - ex.started) * 1000.0
    if ex.outcome is not None and ex.outcome is not HttpOutcome.RESPONSE:
        return HttpResult(ex.outcome, None, None, ex.error, elapsed_ms)
    data = bytes(ex.received)
    head = _parse_head(data)
    if head is None:
        reason = "empty_response" if not data else "not_http"
        return HttpResult(HttpOutcome.NON_HTTP, None, None, reason, elapsed_ms)
    status, headers, offset = head
    body = data[offset:]
    truncated = len(body) > body_cap
    if headers.get("transfer-encoding", "").lower() == "chunked" and not truncated:
        decoded = _dechunk(body)
        if decoded is None:
            return HttpResult(HttpOutcome.NON_HTTP, status, None, "bad_chunked_body", elapsed_ms)
        body = decoded
    length = _content_length(headers)
    if length is not None and not truncated:
        body = body[:length]
    # Keep one byte beyond the cap so the payload parser can say `too_large` itself.
    return HttpResult(
        HttpOutcome.RESPONSE, status, body[: body_cap + 1], None, elapsed_ms, truncated
    )


def http_exchange_many(
    requests: Iterable[HttpRequest], timeout: float, *, body_cap: int = HEALTH_MAX_BYTES
) -> dict[int, HttpResult]:
    """Run every request concurrently against 127.0.0.1; whole batch bounded by `timeout`.

    Reads at most `MAX_HEADER_BYTES + body_cap + 1` bytes per response, then stops: a hostile
    listener cannot make us buffer more than that or wait longer than the deadline.
    """
    sel = selectors.DefaultSelector()
    live: dict[socket.socket, _Exchange] = {}
    results: dict[int, HttpResult] = {}
    read_cap = MAX_HEADER_BYTES + body_cap + 1
    try:
        for req in requests:
            ex = _Exchange(req, _encode_request(req), time.monotonic())
            sock = _nonblocking_socket()
            code = sock.connect_ex((LOOPBACK, req.port))
            if code not in (0, *_CONNECT_PENDING):
                sock.close()
                ex.outcome = (
                    HttpOutcome.REFUSED if code == errno.ECONNREFUSED else HttpOutcome.NON_HTTP
                )
                ex.error = errno.errorcode.get(code, str(code))
                results[req.port] = _finish(ex, body_cap)
                continue
            live[sock] = ex
            sel.register(sock, selectors.EVENT_WRITE, sock)
        deadline = time.monotonic() + timeout
        while live:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in sel.select(remaining):
                sock = key.data
                ex = live[sock]
                _step(sock, ex, sel, read_cap)
                if ex.done:
                    sel.unregister(sock)
                    sock.close()
                    del live[sock]
                    results[ex.req.port] = _finish(ex, body_cap)
        for sock, ex in live.items():
            # A complete head with a short body is a (slow) response; anything less is a timeout.
            if _parse_head(bytes(ex.received)) is not None:
                ex.outcome = HttpOutcome.RESPONSE
            else:
                ex.outcome = HttpOutcome.TIMEOUT
                ex.error = "timeout" if ex.connected else "connect_timeout"
            results[ex.req.port] = _finish(ex, body_cap)
            sock.close()
        live.clear()
    finally:
        for sock in live:
            sock.close()
        sel.close()
    return results


def _step(sock: socket.socket, ex: _Exchange, sel: selectors.BaseSelector, read_cap: int) -> None:
    if not ex.connected:
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            ex.done = True
            ex.outcome = HttpOutcome.REFUSED if code == errno.ECONNREFUSED else HttpOutcome.NON_HTTP
            ex.error = errno.errorcode.get(code, str(code))
            return
        ex.connected = True
    if ex.out:
        try:
            sent = sock.send(ex.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            ex.done = True
            ex.outcome = HttpOutcome.NON_HTTP
            ex.error = type(exc).__name__
            return
        ex.out = ex.out[sent:]
        if not ex.out:
            sel.modify(sock, selectors.EVENT_READ, sock)
        return
    try:
        chunk = sock.recv(_RECV_CHUNK)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as exc:
        # A reset after a complete head still counts as the response we got.
        ex.done = True
        ex.outcome = HttpOutcome.RESPONSE if ex.received else HttpOutcome.NON_HTTP
        ex.error = None if ex.received else type(exc).__name__
        return
    if not chunk:
        ex.done = True
        ex.outcome = HttpOutcome.RESPONSE
        return
    ex.received += chunk
    if len(ex.received) >= read_cap or _complete(bytes(ex.received)):
        ex.done = True
        ex.outcome = HttpOutcome.RESPONSE
        return
    if len(ex.received) > MAX_HEADER_BYTES and _parse_head(bytes(ex.received)) is None:
        ex.done = True
        ex.outcome = HttpOutcome.NON_HTTP
        ex.error = "header_too_large"


def http_exchange(
    req: HttpRequest, timeout: float, *, body_cap: int = HEALTH_MAX_BYTES
) -> HttpResult:
    """One request (same machinery as the batch)."""
    return http_exchange_many([req], timeout, body_cap=body_cap)[req.port]


def can_bind(port: int) -> bool:
    """True iff 127.0.0.1:port can be bound right now (with SO_REUSEADDR, as the daemon binds)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True
