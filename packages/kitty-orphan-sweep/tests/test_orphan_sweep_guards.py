"""sweep() guards and escalation against real processes, with OS refusals injected at the seam.

The targets are real sleeper processes (so signals, exits and PID checks are real); records are
built by hand here because the guards must hold for any record, not only well-formed scans.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest

from _orphan_sweep_helpers import CountingListener, Env, ProcessPool, Spawned, make_record
from kitty_daemon_identity import daemon_root, marker_args
from kitty_orphan_sweep import (
    CleanupPath,
    EscalationBudgets,
    FailedEntry,
    FailureReason,
    PsutilProcessTable,
    ResetResult,
    SkippedEntry,
    SweepGuardError,
    SweptEntry,
    sweep,
)
from kitty_orphan_sweep._proctable import ProcessHandle

FAST = EscalationBudgets(http_s=0.5, term_s=3.0, kill_s=3.0, port_s=0.3)


class Handle:
    """A real psutil handle with chosen methods replaced (AccessDenied, no-ops, ...)."""

    def __init__(self, proc: psutil.Process, **overrides: Callable[[], object]) -> None:
        self._proc = proc
        self._overrides = overrides

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _call(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]()
        return getattr(self._proc, name)()

    def create_time(self) -> float:
        return float(self._call("create_time"))

    def cmdline(self) -> list[str]:
        return list(self._call("cmdline"))

    def exe(self) -> str:
        return str(self._call("exe"))

    def status(self) -> str:
        return str(self._call("status"))

    def uids(self) -> tuple[int, ...]:
        return tuple(self._call("uids"))

    def is_running(self) -> bool:
        return bool(self._call("is_running"))

    def terminate(self) -> None:
        self._call("terminate")

    def kill(self) -> None:
        self._call("kill")


class Table(PsutilProcessTable):
    def __init__(self, **overrides: Callable[[], object]) -> None:
        self.overrides = overrides
        self.listening: dict[int, set[int | None]] | None = None

    def process(self, pid: int) -> ProcessHandle:
        return Handle(psutil.Process(pid), **self.overrides)

    def listening_pids(
        self, ports: Collection[int] | None = None, hint_pids: Collection[int] = ()
    ) -> dict[int, set[int | None]]:
        return (
            self.listening
            if self.listening is not None
            else super().listening_pids(ports, hint_pids)
        )


def _denied() -> None:
    raise psutil.AccessDenied()


def _noop() -> None:
    return None


def _marked_sleeper(pool: ProcessPool, home: Path, *extra: str) -> Spawned:
    return pool.sleeper(*marker_args(daemon_root(home), sys.executable), *extra)


def _started(pid: int) -> float:
    return psutil.Process(pid).create_time()


def _one_list_each(result: ResetResult, n: int) -> None:
    entries: list[SweptEntry | SkippedEntry | FailedEntry] = [
        *result.swept,
        *result.skipped,
        *result.failed,
    ]
    ports = [e.port for e in entries]
    assert len(ports) == n


def test_safe_auto_target_without_listener_is_terminated(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    result = sweep([make_record(s.pid, env.sync[0], _started(s.pid))], budgets=FAST)
    assert [e.cleanup_path for e in result.swept] == [CleanupPath.TERMINATE]
    assert result.swept[0].reason == "safe_auto"
    assert not s.alive()


def test_sigterm_ignoring_target_is_killed_and_stale_reason_reported(
    env: Env, pool: ProcessPool
) -> None:
    s = _marked_sleeper(pool, env.home, "--ignore-sigterm")
    record = make_record(s.pid, env.sync[0], _started(s.pid), stale=True)
    budgets = replace(FAST, term_s=0.3)
    result = sweep([record], budgets=budgets)
    assert [e.cleanup_path for e in result.swept] == [CleanupPath.KILL]
    assert result.swept[0].reason == "safe_auto stale_version"
    assert not s.alive()


def test_reused_pid_is_never_signalled(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    record = make_record(s.pid, env.sync[0], _started(s.pid) - 100.0)
    result = sweep([record], budgets=FAST)
    assert [e.failure_reason for e in result.failed] == [FailureReason.PID_REUSED]
    assert s.alive()


def test_missing_root_marker_is_identity_changed(env: Env, pool: ProcessPool) -> None:
    s = pool.sleeper()  # no markers at all: not the process the (safe_auto) record described
    result = sweep([make_record(s.pid, env.sync[0], _started(s.pid))], budgets=FAST)
    assert [e.failure_reason for e in result.failed] == [FailureReason.IDENTITY_CHANGED]
    assert s.alive()


def test_self_and_ancestors_are_refused(env: Env) -> None:
    me, parent = psutil.Process(), psutil.Process().parent()
    assert parent is not None
    records = [
        make_record(me.pid, env.sync[0], me.create_time()),
        make_record(parent.pid, env.sync[1], parent.create_time()),
    ]
    result = sweep(records, budgets=FAST)
    assert [e.failure_reason for e in result.failed] == [FailureReason.REFUSED_SELF] * 2


def test_access_denied_on_terminate(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    table = Table(terminate=_denied)
    record = make_record(s.pid, env.sync[0], _started(s.pid))
    result = sweep([record], budgets=FAST, process_table=table)
    assert [e.failure_reason for e in result.failed] == [FailureReason.ACCESS_DENIED_ON_TERMINATE]
    assert s.alive()


def test_access_denied_on_kill(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    table = Table(terminate=_noop, kill=_denied)
    record = make_record(s.pid, env.sync[0], _started(s.pid))
    result = sweep([record], budgets=replace(FAST, term_s=0.2), process_table=table)
    assert [e.failure_reason for e in result.failed] == [FailureReason.ACCESS_DENIED_ON_KILL]
    assert s.alive()


def test_still_alive_after_kill(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    table = Table(terminate=_noop, kill=_noop)
    record = make_record(s.pid, env.sync[0], _started(s.pid))
    result = sweep([record], budgets=replace(FAST, term_s=0.2, kill_s=0.2), process_table=table)
    assert [e.failure_reason for e in result.failed] == [FailureReason.STILL_ALIVE_AFTER_KILL]


def test_unexpected_error_is_unknown_failure(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)

    def boom() -> None:
        raise RuntimeError("surprise")

    table = Table(terminate=boom)
    result = sweep([make_record(s.pid, env.sync[0], _started(s.pid))], process_table=table)
    assert [(e.failure_reason, e.detail) for e in result.failed] == [
        (FailureReason.UNKNOWN_FAILURE, "RuntimeError")
    ]
    assert s.alive()


def test_port_still_listening_by_unknown_owner_fails(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    port = env.sync[0]
    squatter = CountingListener(port)
    try:
        table = Table()
        table.listening = {port: {None}}  # the OS hides who holds it now
        result = sweep(
            [make_record(s.pid, port, _started(s.pid))], budgets=FAST, process_table=table
        )
        assert [e.failure_reason for e in result.failed] == [
            FailureReason.PROCESS_GONE_BUT_PORT_STILL_LISTENING
        ]
        # ...but a port now owned by a different, known PID counts as released.
        s2 = _marked_sleeper(pool, env.home)
        table.listening = {port: {os.getpid()}}
        result = sweep(
            [make_record(s2.pid, port, _started(s2.pid))], budgets=FAST, process_table=table
        )
        assert [e.cleanup_path for e in result.swept] == [CleanupPath.TERMINATE]
    finally:
        squatter.close()


def test_process_already_gone_is_swept_as_already_gone(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    started = _started(s.pid)
    s.proc.kill()
    s.proc.wait(timeout=10)
    result = sweep([make_record(s.pid, env.sync[0], started)], budgets=FAST)
    assert [e.cleanup_path for e in result.swept] == [CleanupPath.ALREADY_GONE]


def test_static_guards_fail_before_anything_is_signalled(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    good = make_record(s.pid, env.sync[0], _started(s.pid))
    bad_port = make_record(s.pid, env.sync.stop, _started(s.pid))
    with pytest.raises(SweepGuardError) as info:
        sweep([good, bad_port], budgets=FAST)
    assert info.value.guard == "port_in_family_range"
    assert "nothing was signalled" in str(info.value)
    with pytest.raises(SweepGuardError, match="scanned_family"):
        sweep([good], family="dashboard", budgets=FAST)
    dashboard = make_record(s.pid, env.dashboard[0], _started(s.pid), family="dashboard")
    with pytest.raises(SweepGuardError, match="port_in_family_range"):
        sweep([good, replace(dashboard, port=env.sync[1])], budgets=FAST)
    inconsistent = make_record(s.pid, env.sync[1], None)
    with pytest.raises(SweepGuardError, match="consistent_cleanup_class"):
        sweep([good, inconsistent], budgets=FAST)
    unreasoned = make_record(s.pid, env.sync[1], 1.0, cleanup_class="operator_required")
    with pytest.raises(SweepGuardError, match="consistent_cleanup_class"):
        sweep([unreasoned], budgets=FAST)
    with pytest.raises(SweepGuardError, match="known_family"):
        sweep([replace(good, daemon_family="mail")], budgets=FAST)
    with pytest.raises(SweepGuardError, match="known_cleanup_class"):
        sweep([replace(good, cleanup_class="maybe")], budgets=FAST)  # type: ignore[arg-type]  # a bad class on purpose
    assert s.alive()


def test_classes_decide_targets_and_every_record_lands_once(env: Env, pool: ProcessPool) -> None:
    never = pool.sleeper()
    pre_marker = pool.sleeper()
    records = [
        make_record(
            never.pid,
            env.sync[0],
            _started(never.pid),
            cleanup_class="never_touch",
            skip_reason="third_party",
        ),
        make_record(
            pre_marker.pid,
            env.sync[1],
            _started(pre_marker.pid),
            cleanup_class="operator_required",
            skip_reason="pre_marker",
        ),
        make_record(
            None, env.sync[2], None, cleanup_class="operator_required", skip_reason="missing_pid"
        ),
    ]
    result = sweep(records, budgets=FAST)
    assert [e.skip_reason for e in result.skipped] == ["third_party", "pre_marker", "missing_pid"]
    assert never.alive()
    assert pre_marker.alive()
    forced = sweep(records, force=True, budgets=FAST)
    _one_list_each(forced, 3)
    assert [e.skip_reason for e in forced.skipped] == ["third_party"]
    assert forced.swept == ()
    # A pre-marker record is signalled only while its process still holds the port: this
    # sleeper holds none (the stopped case is in test_orphan_sweep_sweep).
    assert [(e.port, e.failure_reason) for e in forced.failed] == [
        (env.sync[1], FailureReason.IDENTITY_CHANGED),
        (env.sync[2], FailureReason.NO_PID_AND_HTTP_SHUTDOWN_FAILED),
    ]
    assert "entry signature" in forced.failed[0].detail  # a bare sleeper is not spawn-shaped
    assert never.alive()
    assert pre_marker.alive()


def test_forced_target_without_start_time_or_scanned_marker_is_refused(
    env: Env, pool: ProcessPool
) -> None:
    s = _marked_sleeper(pool, env.home)
    unreadable = make_record(
        s.pid, env.sync[0], None, cleanup_class="operator_required", skip_reason="argv_unreadable"
    )
    cross = make_record(
        s.pid,
        env.sync[1],
        _started(s.pid),
        cleanup_class="operator_required",
        skip_reason="cross_root",
    )
    result = sweep([unreadable, cross], force=True, budgets=FAST)
    assert [e.failure_reason for e in result.failed] == [
        FailureReason.PID_REUSED,
        FailureReason.IDENTITY_CHANGED,
    ]
    assert s.alive()


def test_self_reported_start_time_is_not_kill_authority(env: Env, pool: ProcessPool) -> None:
    """Create time unreadable at scan: the record's start time is the listener's own claim.

    Even a claim that happens to be right (here: the true start time) was never observed, so the
    SWP-09 re-check has nothing to compare against and the target is refused, not signalled.
    """
    s = _marked_sleeper(pool, env.home)
    claimed = replace(
        make_record(
            s.pid,
            env.sync[0],
            _started(s.pid),
            cleanup_class="operator_required",
            skip_reason="argv_unreadable",
        ),
        start_time_matches=None,  # what classify reports when create_time was unknown
    )
    result = sweep([claimed], force=True, budgets=FAST)
    assert [e.failure_reason for e in result.failed] == [FailureReason.PID_REUSED]
    assert s.alive()


def test_empty_sweep_and_budget_validation() -> None:
    assert sweep([]) == ResetResult()
    with pytest.raises(ValueError, match="term_s"):
        EscalationBudgets(term_s=-1)
    with pytest.raises(ValueError, match="http_s"):
        EscalationBudgets(http_s=True)
    assert EscalationBudgets(1, 2, 3, 4).total_s == 10


def test_unreadable_argv_at_signal_time_is_identity_changed(env: Env, pool: ProcessPool) -> None:
    s = _marked_sleeper(pool, env.home)
    table = Table(cmdline=_denied)
    result = sweep([make_record(s.pid, env.sync[0], _started(s.pid))], process_table=table)
    assert [e.failure_reason for e in result.failed] == [FailureReason.IDENTITY_CHANGED]
    assert s.alive()
