"""kitty-daemon-identity: the identity contract between kitty daemons and their cleaners.

It holds (stdlib only):

* the app profile (``AppProfile``, kitty's own ``KITTY``) and its daemon families (``Family``,
  kitty's ``DaemonFamily`` names, half-open ``PortRange``s), the home/daemon-root resolution and
  the scope id of a daemon root on this machine;
* the argv markers a spawner appends (``marker_args``, ``parse_markers``, ``spawn_shaped``);
* the health payload a daemon serves (``HealthPayload``; ``parse_health`` never raises);
* the family state record and the scope key file (``read_state``/``write_state``,
  ``ensure_scope_key``/``read_scope_key``);
* the pure cleanup classifier (``classify``) and the self-retirement decision (``should_retire``);
* ``DaemonServer``, a tiny loopback-only HTTP server for daemons, and the reference daemon
  ``python -m kitty_daemon_identity`` (console script ``kitty-daemon``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Process facts have one implementation in kitty, kitty-filelock's (issue 12); they stay part of
# this package's public face for the daemons and cleaners that import them from here.
from kitty_filelock import process_alive_since, process_start_time, read_only_constants

from ._classify import (
    ArgvError,
    CleanupClass,
    ConnectState,
    DaemonIdentityRecord,
    Foreground,
    HealthOutcome,
    HealthProbe,
    IdentitySource,
    ListenerObservation,
    PidError,
    SkipReason,
    classify,
)
from ._constants import (
    DAEMON_PROTOCOL_VERSION,
    DAEMON_TICK_SECONDS,
    DEFAULT_ENTRY_SIGNATURES,
    EXEC_MARKER_PREFIX,
    HEALTH_MAX_BYTES,
    HEALTH_PAYLOAD_MAX_BYTES,
    HEALTH_SCHEMA_VERSION,
    IDLE_RETIREMENT_SECONDS,
    LISTEN_BACKLOG,
    REQUEST_BODY_MAX_BYTES,
    RETIRE_GRACE_SECONDS,
    ROOT_MARKER_PREFIX,
    START_TIME_TOLERANCE_S,
    STATE_SCHEMA_VERSION,
)
from ._errors import ConfigError, KittyDaemonError, RangeConfigError
from ._family import (
    DASHBOARD_RANGE,
    SYNC_RANGE,
    DaemonFamily,
    PortRange,
    family_range,
    log_path,
    range_variable,
    scope_key_path,
    spawn_lock_path,
    state_path,
)
from ._health import HEALTH_KEYS, HealthParseError, HealthPayload, parse_health
from ._launch import EXIT_PORT_TAKEN, DaemonLaunch, bind_first, daemon_launch, serve_daemon
from ._markers import Markers, marker_args, parse_markers, spawn_shaped, strip_markers
from ._profile import KITTY, AppProfile, Family, as_family, daemon_root, default_home
from ._retire import DaemonSelf, RetireDecision, RetireReason, should_retire
from ._scope import namespace_id, scope_id
from ._state import (
    OtherRoot,
    StateRecord,
    ensure_scope_key,
    load_other_root,
    read_scope_key,
    read_state,
    write_state,
)
from ._version import __version__

if TYPE_CHECKING:
    from ._server import DaemonServer, RouteHandler, RouteRequest, RouteRequestHandler

_LAZY_SERVER = frozenset({"DaemonServer", "RouteHandler", "RouteRequest", "RouteRequestHandler"})


def __getattr__(name: str) -> object:
    # The daemon's HTTP server loads on first use: http.server brings http.client, email and ssl
    # (about 20 ms), which a cleaner or `kitty-doctor` never needs.
    if name in _LAZY_SERVER:
        from . import _server

        return getattr(_server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DAEMON_PROTOCOL_VERSION",
    "DAEMON_TICK_SECONDS",
    "DASHBOARD_RANGE",
    "DEFAULT_ENTRY_SIGNATURES",
    "EXEC_MARKER_PREFIX",
    "EXIT_PORT_TAKEN",
    "HEALTH_KEYS",
    "HEALTH_MAX_BYTES",
    "HEALTH_PAYLOAD_MAX_BYTES",
    "HEALTH_SCHEMA_VERSION",
    "IDLE_RETIREMENT_SECONDS",
    "KITTY",
    "LISTEN_BACKLOG",
    "REQUEST_BODY_MAX_BYTES",
    "RETIRE_GRACE_SECONDS",
    "ROOT_MARKER_PREFIX",
    "START_TIME_TOLERANCE_S",
    "STATE_SCHEMA_VERSION",
    "SYNC_RANGE",
    "AppProfile",
    "ArgvError",
    "CleanupClass",
    "ConfigError",
    "ConnectState",
    "DaemonFamily",
    "DaemonIdentityRecord",
    "DaemonLaunch",
    "DaemonSelf",
    "DaemonServer",
    "Family",
    "Foreground",
    "HealthOutcome",
    "HealthParseError",
    "HealthPayload",
    "HealthProbe",
    "IdentitySource",
    "KittyDaemonError",
    "ListenerObservation",
    "Markers",
    "OtherRoot",
    "PidError",
    "PortRange",
    "RangeConfigError",
    "RetireDecision",
    "RetireReason",
    "RouteHandler",
    "RouteRequest",
    "RouteRequestHandler",
    "SkipReason",
    "StateRecord",
    "__version__",
    "as_family",
    "bind_first",
    "classify",
    "daemon_launch",
    "daemon_root",
    "default_home",
    "ensure_scope_key",
    "family_range",
    "load_other_root",
    "log_path",
    "marker_args",
    "namespace_id",
    "parse_health",
    "parse_markers",
    "process_alive_since",
    "process_start_time",
    "range_variable",
    "read_scope_key",
    "read_state",
    "scope_id",
    "scope_key_path",
    "serve_daemon",
    "should_retire",
    "spawn_lock_path",
    "spawn_shaped",
    "state_path",
    "strip_markers",
    "write_state",
]

# The exported constants are the contract's values and kitty's defaults, read by this package
# from its private modules: assigning one here would change nothing, so it says what does.
read_only_constants(
    __name__,
    {
        "DAEMON_TICK_SECONDS": "pass DaemonServer(..., tick_s=...)",
        "IDLE_RETIREMENT_SECONDS": "pass DaemonServer(..., idle_limit_s=...)",
        "DAEMON_PROTOCOL_VERSION": "pass Family(..., protocol_version=...) for your daemons",
        "DEFAULT_ENTRY_SIGNATURES": "pass Family(..., entry_signatures=...)",
        "ROOT_MARKER_PREFIX": "pass AppProfile(..., marker_prefix=...)",
        "EXEC_MARKER_PREFIX": "pass AppProfile(..., marker_prefix=...)",
        "SYNC_RANGE": "set KITTY_SYNC_PORTS, or give your Family its ports",
        "DASHBOARD_RANGE": "set KITTY_DASHBOARD_PORTS, or give your Family its ports",
        "KITTY": "fixed: kitty's own profile; build an AppProfile for your app",
        "RETIRE_GRACE_SECONDS": "fixed: how long a retiring daemon may take to exit",
        "HEALTH_MAX_BYTES": "fixed: the health body cap of the contract",
        "HEALTH_PAYLOAD_MAX_BYTES": "fixed: the payload size a daemon may serve",
        "HEALTH_SCHEMA_VERSION": "fixed: the health schema of this release",
        "STATE_SCHEMA_VERSION": "fixed: the state record schema of this release",
        "REQUEST_BODY_MAX_BYTES": "fixed: the request body cap of the contract",
        "LISTEN_BACKLOG": "fixed: the listen backlog",
        "START_TIME_TOLERANCE_S": "fixed: one tolerance for every start-time comparison",
        "EXIT_PORT_TAKEN": "fixed: part of the spawn contract",
        "HEALTH_KEYS": "fixed: the keys of the health contract",
    },
)
