"""The recorded singleton: what the state record's process is now, and the one way to stop it.

A state record names a pid, a port and a start time; anyone can write one, and anyone can bind
the port it names once the daemon releases it. So a record is a lead, never authority: the
verdict comes from the OS (the process's exact create time, the root marker in its argv, the
socket table), and only then from what the process says about itself over health.
`ensure_daemon` and kitty-doctor both judge and stop the recorded daemon through this module.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from kitty_daemon_identity import (
    Family,
    HealthPayload,
    StateRecord,
    as_family,
    parse_markers,
    scope_id,
)
from kitty_filelock import frozen_dataclass

from . import _constants
from ._escalate import Target, escalate
from ._ownership import owner_uid, prove_socket_owner
from ._proctable import ProcessTable, PsutilProcessTable
from ._results import EscalationBudgets, FailedEntry, SweptEntry
from ._scan import probe_health

# psutil is imported inside the functions that use it: see _proctable.


class RecordedStatus(StrEnum):
    """What the OS shows about the process a state record names."""

    HEALTHY = "healthy"
    """Alive with the recorded create time, our root marker, provably the owner of every socket
    on its port, and health answers with the recorded identity."""
    UNHEALTHY = "unhealthy"
    """Ours and alive (marker, create time), but not listening or health fails or disagrees."""
    IMPOSTOR = "impostor"
    """Ours and alive, but another process or uid listens on the recorded port: whatever answers
    there is not the recorded daemon and never gets a key."""
    FOREIGN = "foreign"
    """The pid is alive with the recorded create time but is not a daemon of this home (no root
    marker for it in its argv): the record is wrong, and the process is never signalled."""
    DEAD = "dead"
    REUSED = "reused"
    """The pid exists but started at another time: someone else's process now."""
    UNVERIFIED = "unverified"
    """The OS cannot tell (start time, argv or socket table unreadable; port outside the
    family's range): nothing is done to it."""


@frozen_dataclass
class RecordedCheck:
    """`check_recorded`'s verdict: a status, one plain sentence why, and the health payload."""

    status: RecordedStatus
    detail: str | None = None
    payload: HealthPayload | None = None
    #: The socket table proved every socket on the recorded port is this process's (healthy, or
    #: ours and alive but not answering health).
    owns_port: bool = False


def _family_of(state: StateRecord, family: Family | None) -> Family:
    """The record's family: the app's one given, else kitty's by the record's name."""
    return as_family(family if family is not None else state.family)


def _mismatch(payload: HealthPayload, state: StateRecord, scope: str) -> list[str]:
    return [
        name
        for name, ok in (
            ("pid", payload.pid == state.pid),
            ("port", payload.port == state.port),
            ("family", payload.daemon_family == state.family),
            ("start time", payload.process_started_at == state.process_started_at),
            ("scope", payload.singleton_scope_id == scope and state.scope_id == scope),
        )
        if not ok
    ]


def _health(state: StateRecord, scope: str, attempts: int) -> RecordedCheck:
    detail = "health did not answer"
    for _ in range(max(1, attempts)):
        probe = probe_health([state.port], _constants.HEALTH_TIMEOUT_S)[state.port]
        payload = probe.payload
        if payload is None:
            detail = f"health {probe.outcome.value}"
            continue
        wrong = _mismatch(payload, state, scope)
        if wrong:
            detail = "health disagrees on " + ", ".join(wrong)
        elif payload.status != "ok":
            detail = f"health status {payload.status}"
        else:
            return RecordedCheck(RecordedStatus.HEALTHY, None, payload, owns_port=True)
    return RecordedCheck(RecordedStatus.UNHEALTHY, detail, owns_port=True)


def check_recorded(
    state: StateRecord,
    *,
    home: Path | str | None = None,
    process_table: ProcessTable | None = None,
    health: bool = True,
    attempts: int = 1,
    family: Family | None = None,
) -> RecordedCheck:
    """Judge the process `state` names, from the OS first; never signals, never sends a key.

    Health (`GET /api/health`, `attempts` tries) is asked only once the socket table proves that
    every socket on the recorded port is open in the recorded process and owned by the daemon
    root's owner, so a squatter on a released port is an `impostor`, never `healthy`. An app's
    record needs its `family` (whose markers and range to check).
    """
    import psutil

    fam = _family_of(state, family)
    root = fam.app.daemon_root(home)
    table = process_table if process_table is not None else PsutilProcessTable()
    try:
        proc = table.process(state.pid)
        created = proc.create_time()
        if created != state.process_started_at:
            return RecordedCheck(RecordedStatus.REUSED)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return RecordedCheck(RecordedStatus.DEAD, "exited, not yet reaped by its parent")
        argv = proc.cmdline()
    except psutil.NoSuchProcess:
        return RecordedCheck(RecordedStatus.DEAD)
    except psutil.Error as exc:
        why = f"process unreadable ({type(exc).__name__})"
        return RecordedCheck(RecordedStatus.UNVERIFIED, why)
    markers = parse_markers(argv, profile=fam.app)
    if markers.conflict or markers.root != str(root):
        return RecordedCheck(
            RecordedStatus.FOREIGN, f"pid {state.pid} does not carry this home's root marker"
        )
    rng = fam.range()
    if state.port not in rng:
        return RecordedCheck(RecordedStatus.UNVERIFIED, f"port {state.port} outside {rng}")
    sockets = table.listening_sockets(state.port, state.pid)
    if sockets is None:
        return RecordedCheck(RecordedStatus.UNVERIFIED, "the OS socket table cannot be read here")
    if not sockets:
        return RecordedCheck(RecordedStatus.UNHEALTHY, f"not listening on port {state.port}")
    problem = prove_socket_owner(
        table,
        state.port,
        uid=owner_uid(root),
        pid=state.pid,
        create_time=state.process_started_at,
        current_create_time=created,
    )
    if problem is not None:
        return RecordedCheck(RecordedStatus.IMPOSTOR, problem)
    if not health:
        return RecordedCheck(RecordedStatus.HEALTHY, owns_port=True)
    return _health(state, scope_id(root), attempts)


def stop_recorded(
    state: StateRecord,
    *,
    home: Path | str | None = None,
    budgets: EscalationBudgets | None = None,
    process_table: ProcessTable | None = None,
    family: Family | None = None,
) -> SweptEntry | FailedEntry:
    """Stop the recorded daemon through the sweep's guarded escalation (SWP-16).

    Authenticated shutdown first (the key only to a socket proven to be this process's), then
    SIGTERM and SIGKILL, each right after re-checking the pid's exact create time and our root
    marker in its argv. A record naming any other process (a `sleep`, someone's server) gets
    `identity_changed` and no signal, whatever the caller's flags.
    """
    fam = _family_of(state, family)
    root = fam.app.daemon_root(home)
    table = process_table if process_table is not None else PsutilProcessTable()
    target = Target(
        port=state.port,
        pid=state.pid,
        create_time=state.process_started_at,
        cleanup_class="recorded_singleton",
        marker_root=str(root),
        key_root=root,
        package_version=state.package_version,
        protocol_version=state.protocol_version,
        reason="recorded_singleton",
        profile=fam.app,
    )
    if budgets is None:
        budgets = EscalationBudgets(http_s=_constants.STOP_RECORDED_GRACE_S)
    return escalate(target, budgets, table, table.protected_pids())


__all__ = ["RecordedCheck", "RecordedStatus", "check_recorded", "stop_recorded"]
