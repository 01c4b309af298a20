"""Module-level constants of the daemon identity contract (SPEC §0.7); tests may patch them."""

from __future__ import annotations

from typing import Final

# One tolerance for every start-time comparison in kitty (lock records, state records, the
# classifier, the sweep's re-check): kitty-filelock's, which owns the start-time reader.
from kitty_filelock import START_TIME_TOLERANCE_S

__all__ = [
    "DAEMON_PROTOCOL_VERSION",
    "DAEMON_TICK_SECONDS",
    "DEFAULT_ENTRY_SIGNATURES",
    "EXEC_MARKER_PREFIX",
    "HEALTH_MAX_BYTES",
    "HEALTH_PAYLOAD_MAX_BYTES",
    "HEALTH_SCHEMA_VERSION",
    "IDLE_RETIREMENT_SECONDS",
    "LISTEN_BACKLOG",
    "REQUEST_BODY_MAX_BYTES",
    "RETIRE_GRACE_SECONDS",
    "ROOT_MARKER_PREFIX",
    "START_TIME_TOLERANCE_S",
    "STATE_SCHEMA_VERSION",
]

DAEMON_PROTOCOL_VERSION: Final = 1
HEALTH_SCHEMA_VERSION: Final = 2
STATE_SCHEMA_VERSION: Final = 1
DAEMON_TICK_SECONDS: Final[float] = 30.0
IDLE_RETIREMENT_SECONDS: Final[float] = 900.0
RETIRE_GRACE_SECONDS: Final[float] = 5.0
HEALTH_MAX_BYTES: Final = 65536
HEALTH_PAYLOAD_MAX_BYTES: Final = 2048
REQUEST_BODY_MAX_BYTES: Final = 4096
LISTEN_BACKLOG: Final = 128
#: The only address a kitty daemon binds (a daemon reachable from elsewhere is out of contract).
LOOPBACK: Final = "127.0.0.1"
ROOT_MARKER_PREFIX: Final = "--kitty-daemon-root="
EXEC_MARKER_PREFIX: Final = "--kitty-daemon-exec="
DEFAULT_ENTRY_SIGNATURES: Final[tuple[str, ...]] = ("kitty_daemon_identity", "kitty-daemon")
