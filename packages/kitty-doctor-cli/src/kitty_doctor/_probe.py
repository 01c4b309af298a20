"""One health request to a recorded daemon, on a raw loopback socket.

A raw socket (not http.client, not httpx) because DOC-01/DOC-12 demand: no name resolution, no
proxy, TCP only to 127.0.0.1. `socket.create_connection` would call `getaddrinfo` and an HTTP
client library may read the proxy environment.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Final

HEALTH_TIMEOUT_S: Final = 0.5
HEALTH_MAX_BYTES: Final = 65536
_HEADER_LIMIT: Final = 8192


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int | None
    body: bytes
    error: str | None


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    timeout_s: float = HEALTH_TIMEOUT_S,
) -> HttpReply:
    """Send one HTTP/1.0 request to 127.0.0.1:port; never raises."""
    deadline = time.monotonic() + timeout_s
    lines = [f"{method} {path} HTTP/1.0", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    chunks: list[bytes] = []
    received = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(("127.0.0.1", port))
            sock.sendall(request)
            # Bounded by both the byte cap and the deadline: a slow-drip peer cannot hold us.
            while received <= HEALTH_MAX_BYTES + _HEADER_LIMIT:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return HttpReply(None, b"", "timeout")
                sock.settimeout(remaining)
                chunk = sock.recv(16384)
                if not chunk:
                    break
                chunks.append(chunk)
                received += len(chunk)
    except TimeoutError:
        return HttpReply(None, b"", "timeout")
    except ConnectionRefusedError:
        return HttpReply(None, b"", "refused")
    except OSError as exc:
        return HttpReply(None, b"", f"connect failed ({exc.strerror or type(exc).__name__})")
    raw = b"".join(chunks)
    head, sep, payload = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        return HttpReply(None, b"", "not an HTTP response")
    try:
        status = int(status_line[1])
    except ValueError:
        return HttpReply(None, b"", "not an HTTP response")
    return HttpReply(status, payload, None)
