"""Opt-in repairs: `--reset` (DOC-05) and `--unstick-lock` (DOC-06), run in that order (DOC-07).

Nothing here decides what is safe to stop, and nothing here sends a key or a signal: the
classifier (kitty-daemon-identity) and kitty-orphan-sweep's guarded escalation (`sweep`,
`check_recorded`, `stop_recorded`) do. This module gathers consent, calls them, and handles the
recorded singletons under their family's spawn lock.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from kitty_filelock import frozen_dataclass, frozen_replace

from ._collect import (
    enum_value,
    family_state_path,
    lock_holders,
    orphan_entry,
    recorded_state,
    scan_family,
    verify_recorded,
)
from ._config import Config
from ._document import jsonable
from ._durations import exact_age, humanize_age
from ._model import DaemonStatus, UnstickResult
from ._review import Candidate, details, headline, is_yours, owner

SPAWN_LOCK_TIMEOUT_S: Final = 10.0

FORCE_HINT: Final = (
    "{n} daemon(s) {app} cannot prove are safe to stop were skipped;"
    " review them, then re-run with --force to stop them: {command}"
)


def consent_question(count: int, app: str = "kitty") -> str:
    return f"Stop {count} daemon(s) {app} cannot prove are safe to stop? [y/N] "


@frozen_dataclass
class Consent:
    """How the operator answered for daemons the doctor cannot prove safe."""

    value: str  # none_needed | forced | confirmed | declined | not_asked

    @property
    def granted(self) -> bool:
        return self.value in ("forced", "confirmed")


def decide_consent(
    candidates: Sequence[Candidate],
    *,
    force: bool,
    interactive: bool,
    ask: Callable[[Sequence[Candidate]], bool],
) -> Consent:
    """Pure except for `ask`: force wins, then an interactive y/N, else skip (DOC-05)."""
    if not candidates:
        return Consent("none_needed")
    if force:
        return Consent("forced")
    if interactive:
        return Consent("confirmed" if ask(candidates) else "declined")
    return Consent("not_asked")


def _outcome(result: Any) -> dict[str, Any]:
    """The sweep's own result words for one stop (`SweptEntry` or `FailedEntry`)."""
    from kitty_orphan_sweep import SweptEntry

    if isinstance(result, SweptEntry):
        return {"result": "stopped", "cleanup_path": enum_value(result.cleanup_path)}
    reason = enum_value(result.failure_reason)
    return {
        "result": f"not stopped: {reason} ({result.detail})",
        "failure_reason": reason,
    }


def _remove_state(cfg: Config, family: str, expected: Any) -> bool:
    """Remove the state record only if it still names the same daemon (read under the lock)."""
    if recorded_state(cfg, family) != expected:
        return False
    family_state_path(cfg, family).unlink(missing_ok=True)
    return True


#: Statuses whose record is simply wrong now: removed, and nothing is signalled.
_STALE: Final = {
    DaemonStatus.DEAD: "remove_stale_record",
    DaemonStatus.REUSED: "remove_stale_record",
    DaemonStatus.FOREIGN: "remove_foreign_record",
}


def _stop(cfg: Config, family: str, state: Any, action: str) -> dict[str, Any]:
    # The one stop path (kitty-orphan-sweep): key only to a proven socket owner, and a signal
    # only after the pid's exact create time and our root marker are re-checked.
    from kitty_orphan_sweep import stop_recorded

    outcome = _outcome(stop_recorded(state, home=cfg.home, family=cfg.family(family)))
    if outcome["result"] == "stopped":
        _remove_state(cfg, family, state)
    return {"action": action, **outcome}


def _act_on(cfg: Config, family: str, state: Any, consent: Consent) -> dict[str, Any] | None:
    status, error, payload = verify_recorded(state, cfg)
    if status in _STALE:
        removed = _remove_state(cfg, family, state)
        return {"action": _STALE[status], "result": "removed" if removed else "kept"}
    if status is DaemonStatus.HEALTHY:
        running = payload.package_version if payload is not None else state.package_version
        expected = cfg.expected_version(family)
        if running == expected:
            return None
        return _stop(cfg, family, state, f"stop_version_drift ({running} != {expected})")
    if status in (DaemonStatus.UNHEALTHY, DaemonStatus.IMPOSTOR):
        action = f"stop_{status.value} ({error})"
        if not consent.granted:
            return {"action": action, "result": "skipped: needs consent (--force)"}
        return _stop(cfg, family, state, action)
    return None


def _handle_recorded(cfg: Config, family: str, consent: Consent) -> dict[str, Any] | None:
    from kitty_filelock import LockTimeout, MachineFileLock

    state = recorded_state(cfg, family)
    if state is None:
        return None
    entry: dict[str, Any] = {"family": family, "pid": state.pid, "port": state.port}
    try:
        with MachineFileLock(
            cfg.family(family).spawn_lock_path(cfg.daemon_root),
            acquire_timeout=SPAWN_LOCK_TIMEOUT_S,
            label=f"doctor-reset:{family}",
        ):
            state = recorded_state(cfg, family)
            if state is None:
                return None
            entry |= {"pid": state.pid, "port": state.port}
            acted = _act_on(cfg, family, state, consent)
            if acted is None:
                return None
            entry |= acted
    except LockTimeout:
        entry |= {"action": "lock", "result": "spawn lock busy; recorded daemon left alone"}
    return entry


_RECORDED_WHY: Final = {
    DaemonStatus.UNHEALTHY: "alive but not answering health",
    DaemonStatus.IMPOSTOR: "another process listens on its port",
}


def _needs_consent(cfg: Config) -> list[Candidate]:
    out: list[Candidate] = []
    for family in cfg.families:
        state = recorded_state(cfg, family)
        if state is None:
            continue
        status, error, _ = verify_recorded(state, cfg)
        if status in _RECORDED_WHY:
            out.append(
                (
                    f"the recorded {family} daemon pid {state.pid} port {state.port}:"
                    f" {_RECORDED_WHY[status]}",
                    () if not error else (str(error),),
                )
            )
    return out


def _not_yours(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A skipped entry for another user's daemon: this user cannot stop it, so it is never a
    target (a forced sweep would only fail on it and recommend itself again)."""
    return {
        "pid": entry.get("pid"),
        "port": entry.get("port"),
        "cleanup_class": entry.get("cleanup_class"),
        "skip_reason": entry.get("skip_reason"),
        "not_yours": True,
        "owner": owner(entry),
    }


def run_reset(
    cfg: Config,
    *,
    force: bool,
    interactive: bool,
    ask: Callable[[Sequence[Candidate]], bool],
) -> dict[str, Any]:
    """Scan + sweep the selected families, then the recorded singletons; the `reset` block."""
    from kitty_orphan_sweep import sweep

    now = time.time()
    scanned = {
        family: [(s, orphan_entry(s, now)) for s in scan_family(cfg, family)]
        for family in cfg.families
    }
    candidates: list[Candidate] = [
        (headline(family, entry, cfg.brand.app), tuple(details(entry)))
        for family, pairs in scanned.items()
        for _, entry in pairs
        if entry["cleanup_class"] == "operator_required" and is_yours(entry)
    ]
    candidates += _needs_consent(cfg)
    consent = decide_consent(candidates, force=force, interactive=interactive, ask=ask)
    swept: list[Any] = []
    skipped: list[Any] = []
    failed: list[Any] = []
    for family, pairs in scanned.items():
        targets = [s.record for s, entry in pairs if is_yours(entry)]
        skipped += [_not_yours(entry) for _, entry in pairs if not is_yours(entry)]
        if not targets:
            continue
        result = sweep(targets, force=consent.granted, home=cfg.home, family=cfg.family(family))
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

        command = doctor_command(finding_context(cfg), "--reset", "--force", version=True)
        hint = FORCE_HINT.format(n=len(candidates), app=cfg.brand.app, command=command)
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
        holders = lock_holders(pr)
        age = pr.record.age_s() if pr.record is not None else None
        held_for = "" if age is None else f" for {humanize_age(age)}"
        named = ", ".join(map(str, holders))
        pids = [str(h.pid) for h in holders]
        stop = shlex.join(["kill", *pids] if pids else ["fuser", "-v", str(path)])
        return UnstickResult(
            False,
            f"the lock is held by {named or 'a live process the OS does not show'}{held_for};"
            f" nothing was removed: stop that process ({stop})",
        )
    if force_release(path, older_than=cfg.stuck_threshold_s):
        return UnstickResult(True, "cleared the stale lock record")
    record = pr.record
    if record is None:
        return UnstickResult(False, "nothing to clear: the lock file holds no record")
    age = record.age_s()
    # A young record: say how old it is, when it becomes clearable, and how to clear it now.
    from ._findings import doctor_command
    from ._report import finding_context

    limit = cfg.stuck_threshold_s
    now = doctor_command(
        frozen_replace(finding_context(cfg), stuck_threshold_s=0.0),
        "--unstick-lock",
        threshold=True,
    )
    return UnstickResult(
        False,
        f"kept the stale record from pid {record.pid}: it is {exact_age(age)} old, younger"
        f" than --stuck-threshold {limit:g} s; it becomes clearable in {exact_age(limit - age)}"
        f" (or clear it now: {now}); harmless meanwhile, the next holder overwrites it",
    )
