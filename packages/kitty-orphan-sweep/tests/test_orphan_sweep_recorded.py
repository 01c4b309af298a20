"""check_recorded / stop_recorded: a state record is a lead, the OS is the verdict (issue 10)."""

from __future__ import annotations

import dataclasses
import sys

import psutil
import pytest

import kitty_daemon_identity as kdi
from _orphan_sweep_helpers import (
    Env,
    ProcessPool,
    RecordingListener,
    kill_and_reap,
    record_singleton,
)
from kitty_daemon_identity import DaemonFamily, StateRecord, daemon_root, marker_args, scope_id
from kitty_orphan_sweep import (
    CleanupPath,
    EscalationBudgets,
    FailedEntry,
    FailureReason,
    RecordedStatus,
    SweptEntry,
    check_recorded,
    stop_recorded,
)

QUICK = EscalationBudgets(http_s=1.0, term_s=1.0, kill_s=0.5, port_s=0.3)


def _record(env: Env, pid: int, port: int | None = None) -> StateRecord:
    root = daemon_root(env.home)
    return StateRecord(
        family=DaemonFamily.SYNC,
        pid=pid,
        port=env.sync[0] if port is None else port,
        process_started_at=psutil.Process(pid).create_time(),
        package_version=kdi.__version__,
        protocol_version=kdi.DAEMON_PROTOCOL_VERSION,
        started_at="2025-01-01T00:00:00Z",
        instance_id="0" * 32,
        scope_id=scope_id(root),
    )


def test_a_healthy_singleton_is_proven_then_stopped_through_the_escalation(
    env: Env, pool: ProcessPool
) -> None:
    daemon = pool.reference(env.home, env.sync[0])
    state = record_singleton(env.home, daemon)
    check = check_recorded(state, home=env.home)
    assert check.status is RecordedStatus.HEALTHY
    assert check.owns_port
    assert check.payload is not None
    assert check.payload.pid == daemon.pid
    outcome = stop_recorded(state, home=env.home, budgets=QUICK)
    assert isinstance(outcome, SweptEntry), outcome
    assert outcome.cleanup_path is CleanupPath.HTTP_SHUTDOWN
    assert daemon.proc.wait(timeout=10) is not None


@pytest.mark.parametrize("kind", ["sleep", "third_party_http"])
def test_a_record_naming_a_process_that_is_not_ours_is_foreign_and_survives_a_stop(
    env: Env, pool: ProcessPool, kind: str
) -> None:
    victim = pool.sleeper() if kind == "sleep" else pool.third_party_http(env.sync[0])
    state = _record(env, victim.pid)
    check = check_recorded(state, home=env.home)
    assert check.status is RecordedStatus.FOREIGN
    assert not check.owns_port
    outcome = stop_recorded(state, home=env.home, budgets=QUICK)
    assert isinstance(outcome, FailedEntry)
    assert outcome.failure_reason is FailureReason.IDENTITY_CHANGED
    assert victim.alive()


def test_a_squatter_on_the_released_port_is_an_impostor_and_never_hears_from_us(
    env: Env, pool: ProcessPool
) -> None:
    """Our daemon lives on without its port; someone else listens there now."""
    ours = pool.sleeper(*marker_args(daemon_root(env.home), sys.executable))
    squatter = RecordingListener(env.sync[0])
    try:
        state = _record(env, ours.pid)
        check = check_recorded(state, home=env.home)
        assert check.status is RecordedStatus.IMPOSTOR, check
        assert not check.owns_port
        assert check.payload is None
        outcome = stop_recorded(state, home=env.home, budgets=QUICK)
        # Ours (marker and create time re-checked) is signalled; the squatter got no request.
        assert isinstance(outcome, SweptEntry), outcome
        assert outcome.cleanup_path is CleanupPath.TERMINATE
        assert b"".join(squatter.requests) == b""
        assert not ours.alive()
    finally:
        squatter.close()


def test_our_live_process_that_listens_nowhere_is_unhealthy_without_the_port(
    env: Env, pool: ProcessPool
) -> None:
    ours = pool.sleeper(*marker_args(daemon_root(env.home), sys.executable))
    check = check_recorded(_record(env, ours.pid), home=env.home)
    assert check.status is RecordedStatus.UNHEALTHY
    assert not check.owns_port


def test_a_wedged_singleton_still_owns_its_port(env: Env, pool: ProcessPool) -> None:
    wedged = pool.reference(env.home, env.sync[0])
    state = record_singleton(env.home, wedged)
    wedged.proc.send_signal(19)  # SIGSTOP: alive, holds its port, but silent
    try:
        check = check_recorded(state, home=env.home)
    finally:
        wedged.proc.send_signal(18)
    assert check.status is RecordedStatus.UNHEALTHY
    assert check.owns_port
    assert check.payload is None


def test_dead_and_recycled_pids(env: Env, pool: ProcessPool) -> None:
    gone = pool.sleeper()
    state = _record(env, gone.pid)
    kill_and_reap(gone.proc)
    assert check_recorded(state, home=env.home).status is RecordedStatus.DEAD
    alive = pool.sleeper(*marker_args(daemon_root(env.home), sys.executable))
    older = dataclasses.replace(
        _record(env, alive.pid), process_started_at=psutil.Process(alive.pid).create_time() - 0.5
    )
    # Within the old 1 s tolerance, but not the same clock reading: someone else's process.
    assert check_recorded(older, home=env.home).status is RecordedStatus.REUSED
    out_of_range = _record(env, alive.pid, port=env.sync.stop + 50)
    assert check_recorded(out_of_range, home=env.home).status is RecordedStatus.UNVERIFIED
