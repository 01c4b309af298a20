"""kitty-orphan-sweep: scan a family's port range, sweep orphans, reuse-or-spawn the singleton.

- `scan(family)` observes every listener of the family's range and classifies it with
  kitty-daemon-identity's pure classifier (`safe_auto`, `operator_required`, `never_touch`);
  `scan_listeners(family)` adds the process facts behind each record (owner uid, create time,
  argv, the root its marker names) for an operator's review.
- `sweep(records)` stops `safe_auto` records (and `operator_required` ones with `force=True`):
  authenticated shutdown → SIGTERM → SIGKILL, all targets in parallel, never a signal without
  the target's identity re-checked (PID + create time, root marker, never self or an ancestor).
- `check_recorded(state)` judges the process a state record names from the OS (create time, root
  marker, socket ownership) before asking its health; `stop_recorded(state)` stops it through the
  same guarded escalation. A record alone is never authority.
- `ensure_daemon(command)` returns the family singleton of this scope, reaping orphans and
  spawning exactly one daemon when needed, even with many concurrent callers.

psutil is imported by this package only; the classifier it feeds stays stdlib-pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kitty_filelock import installed_version, lazy_exports, read_only_constants

if TYPE_CHECKING:
    from ._client import DaemonClient, DaemonGoneError, DaemonResponse
    from ._constants import (
        CONNECT_TIMEOUT_S,
        HEALTH_TIMEOUT_S,
        HTTP_STAGE_S,
        KILL_STAGE_S,
        LOG_ROTATE_BYTES,
        LSOF_TIMEOUT_S,
        PORT_CLOSE_WAIT_S,
        SPAWN_LOCK_TIMEOUT_S,
        SPAWN_PORT_RETRIES,
        SPAWN_TIMEOUT_S,
        STOP_RECORDED_GRACE_S,
        TERM_STAGE_S,
    )
    from ._ensure import DaemonHandle, ensure_daemon
    from ._errors import (
        DaemonStartError,
        DaemonUnresponsiveError,
        KittySweepError,
        NoFreePortError,
        SweepGuardError,
    )
    from ._proctable import ProcessHandle, ProcessTable, PsutilProcessTable
    from ._recorded import RecordedCheck, RecordedStatus, check_recorded, stop_recorded
    from ._results import (
        CleanupPath,
        EscalationBudgets,
        FailedEntry,
        FailureReason,
        ResetResult,
        SkippedEntry,
        SweptEntry,
    )
    from ._scan import ListenerProcess, ScannedListener, probe_health, scan, scan_listeners
    from ._sweep import sweep

# Read cheaply by kitty-filelock: importing importlib.metadata would cost more than this package.
__version__: str = installed_version("kitty-orphan-sweep") or "0.0.0+unknown"

__all__ = [
    "CONNECT_TIMEOUT_S",
    "HEALTH_TIMEOUT_S",
    "HTTP_STAGE_S",
    "KILL_STAGE_S",
    "LOG_ROTATE_BYTES",
    "LSOF_TIMEOUT_S",
    "PORT_CLOSE_WAIT_S",
    "SPAWN_LOCK_TIMEOUT_S",
    "SPAWN_PORT_RETRIES",
    "SPAWN_TIMEOUT_S",
    "STOP_RECORDED_GRACE_S",
    "TERM_STAGE_S",
    "CleanupPath",
    "DaemonClient",
    "DaemonGoneError",
    "DaemonHandle",
    "DaemonResponse",
    "DaemonStartError",
    "DaemonUnresponsiveError",
    "EscalationBudgets",
    "FailedEntry",
    "FailureReason",
    "KittySweepError",
    "ListenerProcess",
    "NoFreePortError",
    "ProcessHandle",
    "ProcessTable",
    "PsutilProcessTable",
    "RecordedCheck",
    "RecordedStatus",
    "ResetResult",
    "ScannedListener",
    "SkippedEntry",
    "SweepGuardError",
    "SweptEntry",
    "__version__",
    "check_recorded",
    "ensure_daemon",
    "probe_health",
    "scan",
    "scan_listeners",
    "stop_recorded",
    "sweep",
]

#: Where each public name lives; each loads on first use, so importing the package is cheap.
_HOMES = {
    "DaemonClient": "_client",
    "DaemonGoneError": "_client",
    "DaemonResponse": "_client",
    "CONNECT_TIMEOUT_S": "_constants",
    "HEALTH_TIMEOUT_S": "_constants",
    "HTTP_STAGE_S": "_constants",
    "KILL_STAGE_S": "_constants",
    "LOG_ROTATE_BYTES": "_constants",
    "LSOF_TIMEOUT_S": "_constants",
    "PORT_CLOSE_WAIT_S": "_constants",
    "SPAWN_LOCK_TIMEOUT_S": "_constants",
    "SPAWN_PORT_RETRIES": "_constants",
    "SPAWN_TIMEOUT_S": "_constants",
    "STOP_RECORDED_GRACE_S": "_constants",
    "TERM_STAGE_S": "_constants",
    "DaemonHandle": "_ensure",
    "ensure_daemon": "_ensure",
    "DaemonStartError": "_errors",
    "DaemonUnresponsiveError": "_errors",
    "KittySweepError": "_errors",
    "NoFreePortError": "_errors",
    "SweepGuardError": "_errors",
    "ProcessHandle": "_proctable",
    "ProcessTable": "_proctable",
    "PsutilProcessTable": "_proctable",
    "RecordedCheck": "_recorded",
    "RecordedStatus": "_recorded",
    "check_recorded": "_recorded",
    "stop_recorded": "_recorded",
    "CleanupPath": "_results",
    "EscalationBudgets": "_results",
    "FailedEntry": "_results",
    "FailureReason": "_results",
    "ResetResult": "_results",
    "SkippedEntry": "_results",
    "SweptEntry": "_results",
    "ListenerProcess": "_scan",
    "ScannedListener": "_scan",
    "probe_health": "_scan",
    "scan": "_scan",
    "scan_listeners": "_scan",
    "sweep": "_sweep",
}
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

#: The exported constants are the defaults the package uses, read when a call starts. Assigning
#: one here would change nothing (the package reads its own module), so it is refused with the
#: argument that does tune it, or said to be fixed.
_TUNED_BY: dict[str, str] = {
    "CONNECT_TIMEOUT_S": "pass scan(..., connect_timeout=...)",
    "HEALTH_TIMEOUT_S": "pass scan(..., health_timeout=...)",
    "HTTP_STAGE_S": "pass sweep(..., budgets=EscalationBudgets(http_s=...))",
    "TERM_STAGE_S": "pass sweep(..., budgets=EscalationBudgets(term_s=...))",
    "KILL_STAGE_S": "pass sweep(..., budgets=EscalationBudgets(kill_s=...))",
    "PORT_CLOSE_WAIT_S": "pass sweep(..., budgets=EscalationBudgets(port_s=...))",
    "SPAWN_TIMEOUT_S": "pass ensure_daemon(..., spawn_timeout=...)",
    "SPAWN_LOCK_TIMEOUT_S": "fixed: how long ensure_daemon waits for another spawner",
    "SPAWN_PORT_RETRIES": "fixed: how many taken ports a spawn steps over",
    "LOG_ROTATE_BYTES": "fixed: the daemon log's rotation size",
    "LSOF_TIMEOUT_S": "fixed: the lsof fallback's deadline",
    "STOP_RECORDED_GRACE_S": "fixed: stop_recorded's wait for a graceful exit",
}


read_only_constants(__name__, _TUNED_BY)
