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
from kitty_filelock import (
    lazy_exports,
    process_alive_since,
    process_start_time,
    read_only_constants,
)

from ._version import __version__

if TYPE_CHECKING:
    # Each name loads on first use (_HOMES below). `DaemonServer`, for one, brings http.server,
    # http.client, email and ssl (about 20 ms), which a cleaner or `kitty-doctor` never needs.
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
    from ._server import DaemonServer, RouteHandler, RouteRequest, RouteRequestHandler
    from ._state import (
        OtherRoot,
        StateRecord,
        ensure_scope_key,
        load_other_root,
        read_scope_key,
        read_state,
        write_state,
    )

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

#: Where each public name lives; each loads on first use, so importing the package is cheap.
_HOMES = {
    "ArgvError": "_classify",
    "CleanupClass": "_classify",
    "ConnectState": "_classify",
    "DaemonIdentityRecord": "_classify",
    "Foreground": "_classify",
    "HealthOutcome": "_classify",
    "HealthProbe": "_classify",
    "IdentitySource": "_classify",
    "ListenerObservation": "_classify",
    "PidError": "_classify",
    "SkipReason": "_classify",
    "classify": "_classify",
    "DAEMON_PROTOCOL_VERSION": "_constants",
    "DAEMON_TICK_SECONDS": "_constants",
    "DEFAULT_ENTRY_SIGNATURES": "_constants",
    "EXEC_MARKER_PREFIX": "_constants",
    "HEALTH_MAX_BYTES": "_constants",
    "HEALTH_PAYLOAD_MAX_BYTES": "_constants",
    "HEALTH_SCHEMA_VERSION": "_constants",
    "IDLE_RETIREMENT_SECONDS": "_constants",
    "LISTEN_BACKLOG": "_constants",
    "REQUEST_BODY_MAX_BYTES": "_constants",
    "RETIRE_GRACE_SECONDS": "_constants",
    "ROOT_MARKER_PREFIX": "_constants",
    "START_TIME_TOLERANCE_S": "_constants",
    "STATE_SCHEMA_VERSION": "_constants",
    "ConfigError": "_errors",
    "KittyDaemonError": "_errors",
    "RangeConfigError": "_errors",
    "DASHBOARD_RANGE": "_family",
    "SYNC_RANGE": "_family",
    "DaemonFamily": "_family",
    "PortRange": "_family",
    "family_range": "_family",
    "log_path": "_family",
    "range_variable": "_family",
    "scope_key_path": "_family",
    "spawn_lock_path": "_family",
    "state_path": "_family",
    "HEALTH_KEYS": "_health",
    "HealthParseError": "_health",
    "HealthPayload": "_health",
    "parse_health": "_health",
    "EXIT_PORT_TAKEN": "_launch",
    "DaemonLaunch": "_launch",
    "bind_first": "_launch",
    "daemon_launch": "_launch",
    "serve_daemon": "_launch",
    "Markers": "_markers",
    "marker_args": "_markers",
    "parse_markers": "_markers",
    "spawn_shaped": "_markers",
    "strip_markers": "_markers",
    "KITTY": "_profile",
    "AppProfile": "_profile",
    "Family": "_profile",
    "as_family": "_profile",
    "daemon_root": "_profile",
    "default_home": "_profile",
    "DaemonSelf": "_retire",
    "RetireDecision": "_retire",
    "RetireReason": "_retire",
    "should_retire": "_retire",
    "namespace_id": "_scope",
    "scope_id": "_scope",
    "OtherRoot": "_state",
    "StateRecord": "_state",
    "ensure_scope_key": "_state",
    "load_other_root": "_state",
    "read_scope_key": "_state",
    "read_state": "_state",
    "write_state": "_state",
    "DaemonServer": "_server",
    "RouteHandler": "_server",
    "RouteRequest": "_server",
    "RouteRequestHandler": "_server",
}
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

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
