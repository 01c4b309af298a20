"""Opt-in repairs: `--reset` (DOC-05) and `--unstick-lock` (DOC-06), run in that order (DOC-07).

Nothing here decides what is safe to stop: the classifier (kitty-daemon-identity) and the sweep's
guards (kitty-orphan-sweep) do. This module gathers consent, calls them, and handles the recorded
singletons under their family's spawn lock.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ._collect import (
    enum_value,
    family_state_path,
    process_cmdline,
    read_recorded,
    scan_family,
    verify_recorded,
)
from ._config import Config
from ._document import jsonable
from ._durations import humanize_age
from ._model import DaemonStatus, RecordedDaemon, UnstickResult
from ._probe import http_request

SPAWN_LOCK_TIMEOUT_S: Final = 10.0
SHUTDOWN_WAIT_S: Final = 2.0
TERM_WAIT_S: Final = 1.5
KILL_WAIT_S: Final = 0.5
_POLL_S: Final = 0.05

FORCE_HINT: Final = (
    "{n} daemon(s) kitty cannot prove are safe to stop were skipped;"
    " review them, then re-run with --force to stop them: {command}"
)


def consent_question(count: int) -> str:
    return f"Stop {count} daemon(s) kitty cannot prove are safe to stop? [y/N] "


@dataclass(frozen=True, slots=True)
class Consent:
    """How the operator answered for daemons kitty cannot prove safe."""

    value: str  # none_needed | forced | confirmed | declined | not_asked

    @property
    def granted(self) -> bool:
        return self.value in ("forced", "confirmed")


def decide_consent(
    candidates: Sequence[str],
    *,
    force: bool,
    interactive: bool,
    ask: Callable[[Sequence[str]], bool],
) -> Consent:
    """Pure except for `ask`: force wins, then an interactive y/N, else skip (DOC-05)."""
    if not candidates:
        return Consent("none_needed")
    if force:
        return Consent("forced")
    if interactive:
        return Consent("confirmed" if ask(candidates) else "declined")
    return Consent("not_asked")


def _process_matches(rec: RecordedDaemon) -> bool:
    """Is the recorded process still alive as the same process (not a zombie, not reused)?"""
    from kitty_daemon_identity import process_alive_since

    return process_alive_since(rec.pid, rec.process_started_at)


def _wait_gone(rec: RecordedDaemon, budget_s: float) -> bool:
    deadline = time.monotonic() + budget_s
    while True:  # bounded by the deadline
        if not _process_matches(rec):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)


def _carries_root_marker(pid: int, root: Path) -> bool:
    """Does the process's argv, read from the OS, carry our root marker? A state record alone is
    never kill authority (SWP-24): a `state.json` naming a `sleep` must not get it signalled."""
    from kitty_daemon_identity import parse_markers

    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    markers = parse_markers(a.decode("utf-8", "surrogateescape") for a in argv)
    return not markers.conflict and markers.root == str(root.resolve())


def _signal_verified(rec: RecordedDaemon, root: Path, sig: int) -> bool:
    """Send `sig` only if the pid still belongs to the recorded process and carries our root
    marker (both re-checked right now, before every signal)."""
    if not _process_matches(rec) or not _carries_root_marker(rec.pid, root):
        return False
    try:
        os.kill(rec.pid, sig)
    except ProcessLookupError:
        return False
    return True


def _authenticated_shutdown(root: Path, rec: RecordedDaemon) -> str:
    from kitty_daemon_identity import read_scope_key

    if not _carries_root_marker(rec.pid, root):
        # No key to a process that is not provably ours (SWP-23).
        return "not stopped: the recorded pid does not carry this home's root marker"
    key = read_scope_key(root)
    if key is None:
        return "no usable scope key; not stopped"
    reply = http_request(
        rec.port,
        "POST",
        "/api/shutdown",
        body=b"{}",
        headers=(("Authorization", f"Bearer {key}"), ("Content-Type", "application/json")),
        timeout_s=SHUTDOWN_WAIT_S,
    )
    if reply.status != 202:
        return f"shutdown refused ({reply.error or f'HTTP {reply.status}'}); not stopped"
    return "stopped" if _wait_gone(rec, SHUTDOWN_WAIT_S) else "shutdown accepted but still running"


def _terminate(rec: RecordedDaemon, root: Path) -> str:
    # Health failing is not kill authority on its own; consent plus a verified start time and
    # our root marker in argv is.
    if not _carries_root_marker(rec.pid, root):
        return "not stopped: the recorded pid does not carry this home's root marker"
    for sig, wait_s in (
        (signal.SIGTERM, TERM_WAIT_S),
        (getattr(signal, "SIGKILL", 9), KILL_WAIT_S),
    ):
        if not _signal_verified(rec, root, sig):
            return "stopped" if not _process_matches(rec) else "not stopped: identity changed"
        if _wait_gone(rec, wait_s):
            return "stopped"
    return "still running after SIGKILL"


def _remove_state(path: Path, expected: RecordedDaemon, root: Path, family: str) -> bool:
    """Remove the state record only if it still names the same daemon (read under the lock)."""
    if read_recorded(root, family) != expected:
        return False
    path.unlink(missing_ok=True)
    return True


def _handle_recorded(cfg: Config, family: str, consent: Consent) -> dict[str, Any] | None:
    from kitty_daemon_identity import DaemonFamily, daemon_root, spawn_lock_path
    from kitty_filelock import LockTimeout, MachineFileLock

    root = daemon_root(cfg.home)
    rec = read_recorded(root, family)
    if rec is None:
        return None
    entry: dict[str, Any] = {"family": family, "pid": rec.pid, "port": rec.port}
    try:
        with MachineFileLock(
            spawn_lock_path(root, DaemonFamily(family)),
            acquire_timeout=SPAWN_LOCK_TIMEOUT_S,
            label=f"doctor-reset:{family}",
        ):
            rec = read_recorded(root, family)
            if rec is None:
                return None
            status, error, payload = verify_recorded(family, rec, cfg)
            path = family_state_path(root, family)
            if status in (DaemonStatus.DEAD, DaemonStatus.REUSED):
                removed = _remove_state(path, rec, root, family)
                entry |= {
                    "action": "remove_stale_record",
                    "result": "removed" if removed else "kept",
                }
            elif status is DaemonStatus.HEALTHY:
                running = payload.package_version if payload is not None else rec.package_version
                expected = cfg.expected_daemon_version
                if expected is None or running == expected:
                    return None
                result = _authenticated_shutdown(root, rec)
                if result == "stopped":
                    _remove_state(path, rec, root, family)
                entry |= {
                    "action": f"stop_version_drift ({running} != {expected})",
                    "result": result,
                }
            elif status is DaemonStatus.UNHEALTHY:
                if not consent.granted:
                    entry |= {
                        "action": "stop_unhealthy",
                        "result": "skipped: needs consent (--force)",
                    }
                else:
                    result = _terminate(rec, root)
                    if result == "stopped":
                        _remove_state(path, rec, root, family)
                    entry |= {"action": f"stop_unhealthy ({error})", "result": result}
            else:
                return None
    except LockTimeout:
        entry |= {"action": "lock", "result": "spawn lock busy; recorded daemon left alone"}
    return entry


def _unhealthy_recorded(cfg: Config) -> list[str]:
    from kitty_daemon_identity import daemon_root

    root = daemon_root(cfg.home)
    out: list[str] = []
    for family in cfg.families:
        rec = read_recorded(root, family)
        if rec is None:
            continue
        status, error, _ = verify_recorded(family, rec, cfg)
        if status is DaemonStatus.UNHEALTHY:
            out.append(f"{family} recorded daemon pid {rec.pid} port {rec.port}: {error}")
    return out


def run_reset(
    cfg: Config,
    *,
    force: bool,
    interactive: bool,
    ask: Callable[[Sequence[str]], bool],
) -> dict[str, Any]:
    """Scan + sweep the selected families, then the recorded singletons; the `reset` block."""
    from kitty_orphan_sweep import sweep

    scanned = {family: scan_family(cfg, family) for family in cfg.families}
    candidates = [
        f"{family} port {r.port} pid {r.pid if r.pid is not None else '?'}:"
        f" {enum_value(r.skip_reason)}"
        for family, records in scanned.items()
        for r in records
        if enum_value(r.cleanup_class) == "operator_required"
    ]
    candidates += _unhealthy_recorded(cfg)
    consent = decide_consent(candidates, force=force, interactive=interactive, ask=ask)
    swept: list[Any] = []
    skipped: list[Any] = []
    failed: list[Any] = []
    for family, records in scanned.items():
        if not records:
            continue
        result = sweep(records, force=consent.granted, home=cfg.home, family=family)
        swept += jsonable(result.swept)
        skipped += jsonable(result.skipped)
        failed += jsonable(result.failed)
    recorded = [
        entry
        for family in cfg.families
        if (entry := _handle_recorded(cfg, family, consent)) is not None
    ]
    hint = None
    if candidates and not consent.granted:
        from ._findings import doctor_command
        from ._report import finding_context

        command = doctor_command(finding_context(cfg), "--reset", "--force")
        hint = FORCE_HINT.format(n=len(candidates), command=command)
    return {
        "swept": swept,
        "skipped": skipped,
        "failed": failed,
        "consent": consent.value,
        "recorded_daemons": recorded,
        "hint": hint,
    }


def run_unstick(cfg: Config) -> UnstickResult:
    """DOC-06: clear a stale record only; a live holder is named, never ripped out."""
    from kitty_filelock import force_release, probe

    path = cfg.lock_path
    if not path.exists():
        return UnstickResult(False, "no lock file; nothing to clear")
    pr = probe(path)
    if pr.held:
        pid = pr.holder_pid
        cmd = process_cmdline(pid) if pid is not None else None
        age = pr.record.age_s() if pr.record is not None else None
        held_for = "" if age is None else f" for {humanize_age(age)}"
        return UnstickResult(
            False,
            f"the lock is held by live pid {pid if pid is not None else '?'}"
            f"{f' ({cmd})' if cmd else ''}{held_for}; nothing was removed:"
            f" stop that process (kill {pid if pid is not None else '<pid>'})",
        )
    if force_release(path, older_than=cfg.stuck_threshold_s):
        return UnstickResult(True, "cleared the stale lock record")
    return UnstickResult(
        False,
        f"nothing to clear (no record, or it is not older than {cfg.stuck_threshold_s:g} s)",
    )
