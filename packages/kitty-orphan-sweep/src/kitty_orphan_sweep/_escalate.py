"""The escalation engine: authenticated shutdown → SIGTERM → SIGKILL, one target at a time.

No signal is ever sent without the target's identity positively re-established right before
it: the PID must not be ours or an ancestor's, its create time must still equal the scanned
one (a recycled PID is someone else), it must run as the uid owning the daemon root (a marker
is only a string in argv), and the root marker it was scanned with must still be in its argv.
A target without a marker (a forced pre-marker record) must still show the family's entry
signature, the exact scanned create time and a socket on its port; a target identified by
neither (argv unreadable at scan) is never signalled. Signals go through the `ProcessHandle`
opened for that check, so psutil refuses them if the PID changes hands in between.

The scope key is a secret: it goes only to a socket the OS shows open in the target process
and owned by the uid owning the key's daemon root (`_ownership`); otherwise no key is sent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from kitty_daemon_identity import KITTY, AppProfile, parse_markers, read_scope_key, spawn_shaped
from kitty_filelock import frozen_dataclass

from . import _constants
from ._net import HttpOutcome, HttpRequest, http_exchange, port_refuses
from ._ownership import owner_uid, prove_process_owns_port, prove_socket_owner
from ._proctable import ProcessHandle, ProcessTable
from ._results import CleanupPath, EscalationBudgets, FailedEntry, FailureReason, SweptEntry

# psutil is imported inside the functions that use it: see _proctable.

_IS_WINDOWS = os.name == "nt"


@frozen_dataclass
class Target:
    """Everything the engine needs about one process to stop (derived from a scan record)."""

    port: int
    pid: int | None
    create_time: float | None
    cleanup_class: str
    #: Root-marker value the argv carried at scan time (None: it had none, or it was unreadable).
    marker_root: str | None
    #: Daemon root whose scope key authorises `/api/shutdown` (None: skip the HTTP stage).
    key_root: Path | None
    package_version: str | None = None
    protocol_version: int | None = None
    reason: str = ""
    #: For a target without a root marker only (a forced pre-marker record): the family's entry
    #: signatures its argv must still match. Empty with no marker: never signalled.
    entry_signatures: tuple[str, ...] = ()
    #: Whose argv markers to re-check (the scanned family's app).
    profile: AppProfile = KITTY


class _Refused(Exception):
    """A runtime guard failed: stop escalating, report this reason."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class _Gone(Exception):
    """The process disappeared on its own (or through an earlier stage) before the next step."""


def shutdown_request(port: int, key: str) -> HttpRequest:
    """`POST /api/shutdown` authenticated with the scope key (never logged, never in an error)."""
    return HttpRequest(
        port=port,
        method="POST",
        path="/api/shutdown",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        body=json.dumps({}).encode(),
    )


def _post_shutdown(port: int, key_root: Path, timeout: float) -> bool:
    """True iff the daemon accepted the authenticated shutdown (HTTP 202).

    Callers prove the socket's owner first (`prove_socket_owner`): this sends the key.
    """
    key = read_scope_key(key_root)
    if key is None:
        return False
    result = http_exchange(shutdown_request(port, key), timeout)
    return result.outcome is HttpOutcome.RESPONSE and result.status == 202


def _guard(
    proc: ProcessHandle, target: Target, protected: frozenset[int], table: ProcessTable
) -> None:
    """Runtime guards (SWP-09), run right before every stage; raises `_Refused` or `_Gone`."""
    import psutil

    if proc.pid in protected:
        raise _Refused(FailureReason.REFUSED_SELF, "target is this process or one of its ancestors")
    try:
        created = proc.create_time()
    except psutil.NoSuchProcess:
        raise _Gone from None
    if target.create_time is None:
        raise _Refused(FailureReason.PID_REUSED, "start time unknown at scan; identity unprovable")
    _guard_owner(proc, target)
    if target.marker_root is None:
        _guard_unmarked(proc, target, created, table)
        return
    if abs(created - target.create_time) > _constants.START_TIME_TOLERANCE_S:
        raise _Refused(
            FailureReason.PID_REUSED,
            f"pid {proc.pid} started at {created:.2f}, scanned process at {target.create_time:.2f}",
        )
    if parse_markers(_argv(proc), profile=target.profile).root != target.marker_root:
        raise _Refused(FailureReason.IDENTITY_CHANGED, "root marker no longer in argv")


def _guard_owner(proc: ProcessHandle, target: Target) -> None:
    import psutil

    # A root marker is a string anyone can put in their argv. Our daemons run as the user owning
    # their daemon root: a process of any other uid is not one of them, marker or not (an
    # operator running as root would otherwise stop another user's process). A root that no
    # longer exists (a deleted checkout) has no owner to ask: then only the operator's own.
    expected = owner_uid(Path(target.marker_root)) if target.marker_root is not None else None
    if expected is None:
        expected = os.getuid() if hasattr(os, "getuid") else None
    if expected is None:  # pragma: no cover - Windows: no uids; the marker check stands alone
        return
    try:
        uid = proc.uids()[0]
    except psutil.NoSuchProcess:
        raise _Gone from None
    except psutil.Error as exc:
        raise _Refused(
            FailureReason.IDENTITY_CHANGED, f"owner unreadable: {type(exc).__name__}"
        ) from None
    if uid != expected:
        raise _Refused(
            FailureReason.IDENTITY_CHANGED,
            f"pid {proc.pid} runs as uid {uid}, not as uid {expected} (the daemon root's owner)",
        )


def _guard_unmarked(
    proc: ProcessHandle, target: Target, created: float, table: ProcessTable
) -> None:
    # Without a marker nothing ties the process to a root: it must still look exactly like the
    # process scanned (same clock, no tolerance), still be spawn-shaped, and still hold the port.
    if not target.entry_signatures:
        raise _Refused(
            FailureReason.IDENTITY_CHANGED,
            "not identified as a daemon of this family at scan (no root marker); never signalled",
        )
    if created != target.create_time:
        raise _Refused(
            FailureReason.IDENTITY_CHANGED,
            f"pid {proc.pid} started at {created:.3f}, not at the scanned {target.create_time:.3f}",
        )
    if not spawn_shaped(_argv(proc), target.entry_signatures, profile=target.profile):
        raise _Refused(FailureReason.IDENTITY_CHANGED, "argv no longer has the entry signature")
    sockets = table.listening_sockets(target.port, proc.pid)
    if not sockets or not any(s.held for s in sockets):
        raise _Refused(
            FailureReason.IDENTITY_CHANGED, f"pid {proc.pid} no longer holds port {target.port}"
        )


def _argv(proc: ProcessHandle) -> list[str]:
    import psutil

    try:
        return proc.cmdline()
    except psutil.NoSuchProcess:
        raise _Gone from None
    except psutil.Error as exc:
        raise _Refused(
            FailureReason.IDENTITY_CHANGED, f"argv unreadable: {type(exc).__name__}"
        ) from None


def _key_goes_to(proc: ProcessHandle, target: Target, table: ProcessTable) -> Path | None:
    """The key root if the port's sockets are proven to be this process's; None: no key."""
    if target.key_root is None:
        return None
    problem = prove_process_owns_port(
        table, target.port, proc.pid, target.create_time, target.key_root
    )
    return target.key_root if problem is None else None


def _signal(
    proc: ProcessHandle,
    send: Callable[[], None],
    denied: FailureReason,
) -> None:
    import psutil

    try:
        send()
    except psutil.NoSuchProcess:
        # Gone, or the PID now belongs to another process (psutil checked the create time).
        raise _Gone from None
    except psutil.AccessDenied:
        raise _Refused(denied, f"permission denied signalling pid {proc.pid}") from None


def _port_released(port: int, pid: int | None, table: ProcessTable, wait_s: float) -> bool:
    """Port refuses connections within `wait_s`, or is now owned by a different PID."""
    import psutil

    deadline = time.monotonic() + wait_s
    while True:
        if port_refuses(port, _constants.FREE_PORT_CONNECT_S):
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(_constants.WAIT_POLL_S)
    if pid is None:
        return False
    try:
        owners = table.listening_pids([port]).get(port, set())
    except psutil.Error:
        return False
    return bool(owners) and None not in owners and pid not in owners


def escalate(
    target: Target,
    budgets: EscalationBudgets,
    table: ProcessTable,
    protected: frozenset[int],
) -> SweptEntry | FailedEntry:
    """Stop one target; never raises (an unexpected exception becomes `unknown_failure`)."""
    started = time.monotonic()
    try:
        path = _run(target, budgets, table, protected)
    except _Refused as refused:
        return _failed(target, refused.reason, refused.detail)
    except Exception as exc:  # any surprise is reported, never propagated into other targets
        return _failed(target, FailureReason.UNKNOWN_FAILURE, type(exc).__name__)
    if isinstance(path, FailedEntry):
        return path
    return SweptEntry(
        pid=target.pid,
        port=target.port,
        package_version=target.package_version,
        protocol_version=target.protocol_version,
        cleanup_class=target.cleanup_class,
        cleanup_path=path,
        reason=target.reason or str(target.cleanup_class),
        duration_ms=round((time.monotonic() - started) * 1000.0, 3),
    )


def _failed(target: Target, reason: FailureReason, detail: str) -> FailedEntry:
    return FailedEntry(
        pid=target.pid,
        port=target.port,
        cleanup_class=target.cleanup_class,
        failure_reason=reason,
        detail=detail,
    )


def _run(
    target: Target, budgets: EscalationBudgets, table: ProcessTable, protected: frozenset[int]
) -> CleanupPath | FailedEntry:
    import psutil

    if target.pid is None:
        return _run_without_pid(target, budgets, table)
    try:
        proc = table.process(target.pid)
    except psutil.NoSuchProcess:
        return _after_exit(target, CleanupPath.ALREADY_GONE, budgets, table)
    except psutil.AccessDenied:
        raise _Refused(
            FailureReason.PID_REUSED, "cannot open the process to re-check its start time"
        ) from None
    stage = CleanupPath.ALREADY_GONE
    try:
        _guard(proc, target, protected, table)
        key_root = _key_goes_to(proc, target, table) if budgets.http_s > 0 else None
        if key_root is not None:
            stage = CleanupPath.HTTP_SHUTDOWN
            # One budget covers the request and the wait for the exit it triggers.
            stage_end = time.monotonic() + budgets.http_s
            if _post_shutdown(target.port, key_root, budgets.http_s) and table.wait_gone(
                proc, max(0.0, stage_end - time.monotonic())
            ):
                return _after_exit(target, stage, budgets, table)
        if not _IS_WINDOWS:
            _guard(proc, target, protected, table)
            stage = CleanupPath.TERMINATE
            _signal(proc, proc.terminate, FailureReason.ACCESS_DENIED_ON_TERMINATE)
            if table.wait_gone(proc, budgets.term_s):
                return _after_exit(target, stage, budgets, table)
        _guard(proc, target, protected, table)
        stage = CleanupPath.KILL
        _signal(proc, proc.kill, FailureReason.ACCESS_DENIED_ON_KILL)
        if not table.wait_gone(proc, budgets.kill_s):
            raise _Refused(
                FailureReason.STILL_ALIVE_AFTER_KILL, f"pid {target.pid} survived SIGKILL"
            )
    except _Gone:
        pass
    return _after_exit(target, stage, budgets, table)


def _after_exit(
    target: Target, path: CleanupPath, budgets: EscalationBudgets, table: ProcessTable
) -> CleanupPath | FailedEntry:
    if _port_released(target.port, target.pid, table, budgets.port_s):
        return path
    return _failed(
        target,
        FailureReason.PROCESS_GONE_BUT_PORT_STILL_LISTENING,
        f"pid {target.pid} is gone but port {target.port} still accepts connections",
    )


def _run_without_pid(
    target: Target, budgets: EscalationBudgets, table: ProcessTable
) -> CleanupPath | FailedEntry:
    # Without a PID nothing can be signalled: only the authenticated HTTP stage is allowed, and
    # only to sockets the OS shows as owned by the daemon root's owner.
    if target.key_root is None:
        return _failed(
            target,
            FailureReason.NO_PID_AND_HTTP_SHUTDOWN_FAILED,
            "no scope key sent: the listener does not claim this daemon root and scope",
        )
    problem = prove_socket_owner(table, target.port, uid=owner_uid(target.key_root))
    if problem is not None:
        return _failed(target, FailureReason.SOCKET_NOT_OWNED, f"no scope key sent: {problem}")
    accepted = _post_shutdown(target.port, target.key_root, budgets.http_s)
    deadline = time.monotonic() + budgets.http_s + budgets.port_s
    while accepted:
        if port_refuses(target.port, _constants.FREE_PORT_CONNECT_S):
            return CleanupPath.HTTP_SHUTDOWN
        if time.monotonic() >= deadline:
            break
        time.sleep(_constants.WAIT_POLL_S)
    detail = (
        "port still listening after shutdown"
        if accepted
        else "shutdown not accepted or no scope key"
    )
    return _failed(target, FailureReason.NO_PID_AND_HTTP_SHUTDOWN_FAILED, detail)
