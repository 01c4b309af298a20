"""A tiny app that is not kitty ("acme"): its profile, and its daemon's whole main.

Run as a script it is acme's daemon, started by ``ensure_daemon(..., family=SYNC)`` through the
spawn contract (``ACME_DAEMON_PORT``, ``--acme-daemon-root=``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from kitty_daemon_identity import (
    AppProfile,
    DaemonServer,
    Family,
    PortRange,
    RouteRequest,
    serve_daemon,
)

ACME = AppProfile(
    "acme",
    families=(Family("sync", PortRange(18400, 18450), "2.3.0"),),
    login_command="acme auth login",
    doctor_command="acme auth doctor",
)
SYNC = ACME.family("sync")


def _hello(req: RouteRequest) -> tuple[int, Mapping[str, Any]]:
    return 200, {
        "hello": req.query.get("name", ("?",))[0],
        "env": sorted(k for k in os.environ if k.startswith(("ACME_", "KITTY_"))),
    }


def _setup(server: DaemonServer) -> None:
    server.add_route("GET", "/api/hello", _hello, with_request=True)


if __name__ == "__main__":
    sys.exit(serve_daemon(SYNC, setup=_setup, hard_exit_after_retire=False))
