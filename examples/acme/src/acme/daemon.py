"""acme's sync daemon (started by ``acme sync`` through the spawn contract)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from kitty_daemon_identity import DaemonServer, serve_daemon

from .integration import SYNC

_synced: list[str] = []


def _status(body: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
    return 200, {"synced": len(_synced)}


def _push(body: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
    _synced.append(str(body.get("item", "")))
    return 200, {"synced": len(_synced)}


def setup(server: DaemonServer) -> None:
    server.add_route("GET", "/api/status", _status)
    server.add_route("POST", "/api/push", _push)


if __name__ == "__main__":
    sys.exit(serve_daemon(SYNC, setup=setup))
