"""sweep() of real reference daemons: each escalation stage, consent, and no wrong kill."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from _orphan_sweep_helpers import Env, ProcessPool, record_singleton
from kitty_daemon_identity import CleanupClass, SkipReason, daemon_root, read_scope_key
from kitty_orphan_sweep import (
    CleanupPath,
    EscalationBudgets,
    FailureReason,
    PsutilProcessTable,
    ResetResult,
    scan,
    sweep,
)
from kitty_orphan_sweep._net import port_refuses
from kitty_orphan_sweep._ownership import ListeningSocket
from test_orphan_sweep_pids import FakeTable

BUDGETS = EscalationBudgets(http_s=1.5, term_s=1.5, kill_s=1.0, port_s=0.5)


class SocketTable(FakeTable):
    """FakeTable whose socket-ownership answer for every port is chosen by the test."""

    def __init__(
        self, listening: dict[int, set[int | None]], sockets: list[ListeningSocket] | None
    ) -> None:
        super().__init__(listening)
        self.sockets = sockets

    def listening_sockets(self, port: int, pid: int | None) -> list[ListeningSocket] | None:
        return self.sockets


def _paths(result: ResetResult) -> list[tuple[int, CleanupPath]]:
    return [(e.port, e.cleanup_path) for e in result.swept]


def test_responsive_orphans_stop_via_authenticated_shutdown(env: Env, pool: ProcessPool) -> None:
    daemons = [
        pool.reference(env.home, env.sync[0]),
        pool.reference(env.home, env.sync[1], args=["--advertise-version", "3.2.2"]),
        pool.reference(env.home, env.sync[2], args=["--busy"]),
    ]
    records = scan("sync")
    assert [r.cleanup_class for r in records] == [CleanupClass.SAFE_AUTO] * 3
    result = sweep(records, budgets=BUDGETS)
    assert _paths(result) == [(d.port, CleanupPath.HTTP_SHUTDOWN) for d in daemons]
    assert result.swept[1].reason == "safe_auto stale_version"
    assert result.swept[1].package_version == "3.2.2"
    assert not result.failed
    assert not result.skipped
    assert not any(d.alive() for d in daemons)
    assert all(port_refuses(d.port, 0.2) for d in daemons)


def test_ignored_shutdown_escalates_to_terminate_then_kill(env: Env, pool: ProcessPool) -> None:
    term = pool.reference(env.home, env.sync[0], args=["--ignore-shutdown"])
    kill = pool.reference(env.home, env.sync[1], args=["--ignore-shutdown", "--ignore-sigterm"])
    budgets = replace(BUDGETS, http_s=0.5, term_s=0.5)
    result = sweep(scan("sync"), budgets=budgets)
    assert _paths(result) == [(term.port, CleanupPath.TERMINATE), (kill.port, CleanupPath.KILL)]
    assert not term.alive()
    assert not kill.alive()


def test_operator_required_needs_force_and_never_touch_is_never_signalled(
    env: Env, pool: ProcessPool, tmp_path: Path
) -> None:
    other_home = tmp_path / "other"
    other_home.mkdir()
    cross = pool.reference(env.home, env.sync[0], markers=other_home)
    pre = pool.reference(env.home, env.sync[1], markers=None)
    wedged = pool.reference(env.home, env.sync[2], args=["--wedge", "accept"])
    singleton = pool.reference(env.home, env.sync[3])
    web = pool.third_party_http(env.sync[4])
    record_singleton(env.home, singleton)
    records = scan("sync", health_timeout=0.3)
    polite = sweep(records, budgets=BUDGETS)
    assert not polite.swept
    assert not polite.failed
    assert [(e.port, e.skip_reason) for e in polite.skipped] == [
        (env.sync[0], SkipReason.CROSS_ROOT),
        (env.sync[1], SkipReason.PRE_MARKER),
        (env.sync[2], SkipReason.UNRESPONSIVE),
        (env.sync[3], SkipReason.IS_RECORDED_SINGLETON),
        (env.sync[4], SkipReason.THIRD_PARTY),
    ]
    assert all(d.alive() for d in (cross, pre, wedged, singleton, web))
    forced = sweep(records, force=True, budgets=replace(BUDGETS, http_s=0.5))
    assert _paths(forced) == [
        # Another root's key never leaves its home: SIGTERM after the marker re-check.
        (env.sync[0], CleanupPath.TERMINATE),
        (env.sync[1], CleanupPath.TERMINATE),
        (env.sync[2], CleanupPath.TERMINATE),
    ]
    assert [e.port for e in forced.skipped] == [env.sync[3], env.sync[4]]
    assert singleton.alive()
    assert web.alive()
    assert not any(d.alive() for d in (cross, pre, wedged))


def test_reused_pid_is_failed_and_the_process_survives(env: Env, pool: ProcessPool) -> None:
    daemon = pool.reference(env.home, env.sync[0])
    (record,) = scan("sync")
    assert record.process_started_at is not None
    recycled = replace(record, process_started_at=record.process_started_at - 50.0)
    result = sweep([recycled], budgets=BUDGETS)
    assert [(e.pid, e.failure_reason) for e in result.failed] == [
        (daemon.pid, FailureReason.PID_REUSED)
    ]
    assert daemon.alive()
    assert not port_refuses(daemon.port, 0.2)


@pytest.mark.parametrize("family", ["sync", "dashboard"])
def test_family_sweep_leaves_the_other_family_alone(
    env: Env, pool: ProcessPool, family: str
) -> None:
    sync_d = pool.reference(env.home, env.sync[0])
    dash_d = pool.reference(env.home, env.dashboard[0], family="dashboard")
    result = sweep(scan(family), family=family, budgets=BUDGETS)
    assert len(result.swept) == 1
    assert sync_d.alive() is (family == "dashboard")
    assert dash_d.alive() is (family == "sync")


def test_pidless_target_gets_only_the_http_stage(env: Env, pool: ProcessPool) -> None:
    from test_orphan_sweep_pids import FakeTable

    polite = pool.reference(env.home, env.sync[0])
    stubborn = pool.reference(env.home, env.sync[1], args=["--ignore-shutdown"])
    hidden = FakeTable({env.sync[0]: {None}, env.sync[1]: {None}})
    records = scan("sync", process_table=hidden)
    assert [r.skip_reason for r in records] == [SkipReason.MISSING_PID] * 2
    result = sweep(records, force=True, budgets=replace(BUDGETS, http_s=0.5, port_s=0.2))
    assert [(e.pid, e.port, e.cleanup_path) for e in result.swept] == [
        (None, polite.port, CleanupPath.HTTP_SHUTDOWN)
    ]
    assert [(e.port, e.failure_reason) for e in result.failed] == [
        (stubborn.port, FailureReason.NO_PID_AND_HTTP_SHUTDOWN_FAILED)
    ]
    assert not polite.alive()
    assert stubborn.alive()  # no PID, so no signal: it ignored the shutdown and keeps running


def test_pidless_listener_of_another_root_never_gets_that_roots_key(
    env: Env, pool: ProcessPool, tmp_path: Path
) -> None:
    """A pid-less listener's claimed daemon_root is unverified: it must not pick which key we send.

    The other root's key is readable by us (same user, 0600), so reading it on the listener's
    say-so would hand a secret to whoever claims that root. With no key, nothing is sent at all.
    """
    from test_orphan_sweep_pids import FakeTable

    other_home = tmp_path / "other-home"
    other = pool.reference(other_home, env.sync[0], markers=other_home)
    records = scan("sync", process_table=FakeTable({env.sync[0]: {None}}))
    assert [r.skip_reason for r in records] == [SkipReason.MISSING_PID]
    assert records[0].daemon_root == str(daemon_root(other_home))
    assert read_scope_key(daemon_root(other_home)) is not None  # it WOULD authorise shutdown
    result = sweep(records, force=True, budgets=replace(BUDGETS, http_s=0.5, port_s=0.2))
    assert result.swept == ()
    assert [(e.port, e.failure_reason) for e in result.failed] == [
        (other.port, FailureReason.NO_PID_AND_HTTP_SHUTDOWN_FAILED)
    ]
    assert "does not claim this daemon root" in result.failed[0].detail
    assert other.alive()


def test_pidless_listener_on_another_users_socket_never_gets_our_key(
    env: Env, pool: ProcessPool
) -> None:
    """Claims of our root and scope are forgeable: a socket owned by another uid gets no key."""
    daemon = pool.reference(env.home, env.sync[0])  # accepts our key: alive afterwards = not sent
    real = PsutilProcessTable().listening_sockets(daemon.port, None)
    assert real == [ListeningSocket(os.getuid(), False)]  # the real table: ours, pid unknown
    for sockets in (
        [ListeningSocket(os.getuid() + 1, False)],  # another user's socket
        [ListeningSocket(os.getuid(), False), ListeningSocket(None, False)],  # one unknown
        [],  # nothing attributable
        None,  # the OS cannot tell: no fallback to "send it anyway"
    ):
        table = SocketTable({env.sync[0]: {None}}, sockets)
        records = scan("sync", process_table=table)
        assert [r.skip_reason for r in records] == [SkipReason.MISSING_PID]
        result = sweep(
            records,
            force=True,
            budgets=replace(BUDGETS, http_s=0.5, port_s=0.2),
            process_table=table,
        )
        assert [(e.port, e.failure_reason) for e in result.failed] == [
            (daemon.port, FailureReason.SOCKET_NOT_OWNED)
        ], sockets
        assert result.failed[0].detail.startswith("no scope key sent")
        assert daemon.alive()
    # and with the real table (ours) the same record IS stopped by the key: the seam is honest
    swept = sweep(
        scan("sync", process_table=SocketTable({env.sync[0]: {None}}, real)),
        force=True,
        budgets=replace(BUDGETS, http_s=2.0, port_s=1.0),
    )
    assert [e.cleanup_path for e in swept.swept] == [CleanupPath.HTTP_SHUTDOWN]
