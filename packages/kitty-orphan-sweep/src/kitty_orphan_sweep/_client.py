"""A client for the singleton's own routes: the scope key goes only to the proven daemon.

``ensure_daemon`` hands back a ``DaemonHandle``; ``handle.client()`` gives a ``DaemonClient`` that
calls the app's authenticated routes with the scope key as bearer token. A port is evidence,
never authority: the daemon may have retired and someone else may have bound its port since, so
before EVERY request the socket table must show the port held by the recorded pid (exact create
time) and owned by the daemon root's owner; otherwise nothing is sent and ``DaemonGoneError``
says to call ``ensure_daemon`` again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from kitty_daemon_identity import read_scope_key
from kitty_filelock import frozen_dataclass

from ._errors import KittySweepError
from ._net import HttpOutcome, HttpRequest, http_exchange
from ._ownership import prove_process_owns_port
from ._proctable import ProcessTable, PsutilProcessTable

__all__ = ["DaemonClient", "DaemonGoneError", "DaemonResponse"]

_DEFAULT_TIMEOUT_S: Final = 10.0
_RESPONSE_CAP: Final = 4 * 1024 * 1024


class DaemonGoneError(KittySweepError, ConnectionError):
    """The daemon a client was made for is no longer provably on its port: nothing was sent."""

    def __init__(self, port: int, pid: int, why: str) -> None:
        super().__init__(port, pid, why)
        self.port, self.pid, self.why = port, pid, why

    def __str__(self) -> str:
        return (
            f"the daemon (pid {self.pid}) is no longer provably on port {self.port}: {self.why}; "
            "nothing was sent - call ensure_daemon() again for the current one"
        )


@frozen_dataclass
class DaemonResponse:
    """One answer: the HTTP status and the decoded JSON body (None when there was none)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class DaemonClient:
    """Authenticated calls to one recorded daemon; the key is read per call, never kept."""

    def __init__(
        self,
        *,
        port: int,
        pid: int,
        process_started_at: float,
        root: Path,
        timeout: float = _DEFAULT_TIMEOUT_S,
        process_table: ProcessTable | None = None,
    ) -> None:
        self.port, self.pid, self.root = port, pid, Path(root)
        self._started = process_started_at
        self.timeout = timeout
        self._table = process_table if process_table is not None else PsutilProcessTable()

    def __repr__(self) -> str:  # no key here, and none is kept anyway
        return f"DaemonClient(port={self.port}, pid={self.pid}, root={str(self.root)!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | list[str]] | None = None,
        timeout: float | None = None,
    ) -> DaemonResponse:
        """Send one request after re-proving the daemon's identity; raise if it is not proven.

        ``ConnectionError`` (``DaemonGoneError`` when nothing was sent) on any transport
        failure; an HTTP error status is a normal ``DaemonResponse``.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        problem = prove_process_owns_port(
            self._table, self.port, self.pid, self._started, self.root
        )
        if problem is not None:
            raise DaemonGoneError(self.port, self.pid, problem)
        key = read_scope_key(self.root)
        if key is None:
            raise DaemonGoneError(self.port, self.pid, "the scope key is missing or unusable")
        target = path + (f"?{urlencode(query, doseq=True)}" if query else "")
        headers = {"Authorization": f"Bearer {key}"}
        body = b""
        if json_body is not None:
            body = json.dumps(dict(json_body), separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        req = HttpRequest(
            port=self.port, method=method.upper(), path=target, headers=headers, body=body
        )
        result = http_exchange(
            req, self.timeout if timeout is None else timeout, body_cap=_RESPONSE_CAP
        )
        if result.outcome is not HttpOutcome.RESPONSE or result.status is None:
            raise ConnectionError(
                f"no HTTP answer from the daemon on port {self.port} ({result.outcome.value})"
            )
        decoded: Any = None
        if result.body:
            try:
                decoded = json.loads(result.body)
            except ValueError:
                decoded = None
        return DaemonResponse(result.status, decoded)

    def get(self, path: str, **kwargs: Any) -> DaemonResponse:
        return self.request("GET", path, **kwargs)

    def post(
        self, path: str, json_body: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> DaemonResponse:
        return self.request(
            "POST", path, json_body=json_body if json_body is not None else {}, **kwargs
        )
