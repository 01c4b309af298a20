"""Self-retirement decision table (DID-22) and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitty_daemon_identity import (
    DaemonFamily,
    DaemonSelf,
    RetireDecision,
    RetireReason,
    StateRecord,
    should_retire,
)

ME = DaemonSelf(pid=100, port=9401, process_started_at=1000.0)


def record(pid: int = 200, port: int = 9402, started: float = 2000.0) -> StateRecord:
    return StateRecord(
        family=DaemonFamily.SYNC,
        pid=pid,
        port=port,
        process_started_at=started,
        package_version="0.1.0",
        protocol_version=1,
        started_at="2025-05-01T10:00:01Z",
        instance_id="0" * 32,
        scope_id="/r#0",
    )


MINE = record(pid=100, port=9401, started=1000.4)  # ±1 s still names me
OTHER = record()

R = RetireReason
CASES = [
    # rule 1: busy wins over everything
    ("busy+superseded", OTHER, True, 5000.0, True, False, RetireDecision(False, R.BUSY)),
    ("busy+idle singleton", MINE, True, 5000.0, False, True, RetireDecision(False, R.BUSY)),
    # rule 2: superseded only by a live recorded process (start time included in recorded_alive)
    ("superseded", OTHER, False, 0.0, True, False, RetireDecision(True, R.SUPERSEDED)),
    ("recorded dead/reused", OTHER, False, 0.0, False, False, RetireDecision(False, R.ACTIVE)),
    ("no record", None, False, 0.0, True, False, RetireDecision(False, R.ACTIVE)),
    ("record is me", MINE, False, 0.0, True, False, RetireDecision(False, R.ACTIVE)),
    # rule 3: idle, not the singleton
    ("idle, no record", None, False, 900.0, False, False, RetireDecision(True, R.IDLE_TIMEOUT)),
    ("idle, other dead", OTHER, False, 901.0, False, False, RetireDecision(True, R.IDLE_TIMEOUT)),
    ("not yet idle", None, False, 899.9, False, False, RetireDecision(False, R.ACTIVE)),
    # rule 4: the singleton retires on idle only when configured
    ("idle singleton", MINE, False, 900.0, True, False, RetireDecision(False, R.ACTIVE)),
    (
        "idle singleton configured",
        MINE,
        False,
        900.0,
        True,
        True,
        RetireDecision(True, R.IDLE_TIMEOUT_SINGLETON),
    ),
    (
        "configured but not idle",
        MINE,
        False,
        10.0,
        True,
        True,
        RetireDecision(False, R.ACTIVE),
    ),
]


@pytest.mark.parametrize(
    ("state", "busy", "idle", "alive", "retire_singleton", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_retirement_table(
    state: StateRecord | None,
    busy: bool,
    idle: float,
    alive: bool,
    retire_singleton: bool,
    expected: RetireDecision,
) -> None:
    got = should_retire(
        state,
        ME,
        busy,
        idle,
        recorded_alive=alive,
        idle_limit_s=900.0,
        retire_singleton_on_idle=retire_singleton,
    )
    assert got == expected


def test_start_time_outside_tolerance_is_not_me() -> None:
    not_me = record(pid=100, port=9401, started=1001.5)  # same pid+port, different process
    got = should_retire(not_me, ME, False, 0.0, recorded_alive=True)
    assert got == RetireDecision(True, R.SUPERSEDED)


@given(
    st.one_of(st.none(), st.just(MINE), st.just(OTHER)),
    st.booleans(),
    st.floats(min_value=0, max_value=1e6),
    st.booleans(),
    st.booleans(),
)
def test_invariants(
    state: StateRecord | None, busy: bool, idle: float, alive: bool, cfg: bool
) -> None:
    got = should_retire(state, ME, busy, idle, recorded_alive=alive, retire_singleton_on_idle=cfg)
    if busy:
        assert not got.retire  # queued or running work is never dropped
    if got.reason is R.SUPERSEDED:
        assert alive
        assert state is not None
    if state is MINE and not cfg:
        assert not got.retire  # idle retirement never stops the singleton unless configured
    assert got.retire == (got.reason not in {R.BUSY, R.ACTIVE})


@pytest.mark.parametrize(
    "not_me",
    [record(pid=101, port=9401, started=1000.0), record(pid=100, port=9402, started=1000.0)],
    ids=["pid_differs", "port_differs"],
)
def test_singleton_needs_pid_and_port(not_me: StateRecord) -> None:
    got = should_retire(not_me, ME, False, 0.0, recorded_alive=True)
    assert got == RetireDecision(True, R.SUPERSEDED)


@pytest.mark.parametrize(
    ("started", "is_me"),
    [(1001.0, True), (999.0, True), (1001.001, False), (998.999, False)],
)
def test_start_time_tolerance_boundary_is_one_second(started: float, is_me: bool) -> None:
    state = record(pid=100, port=9401, started=started)
    got = should_retire(state, ME, False, 0.0, recorded_alive=True)
    assert got == (RetireDecision(False, R.ACTIVE) if is_me else RetireDecision(True, R.SUPERSEDED))


def test_singleton_is_not_retired_on_idle_by_default() -> None:
    got = should_retire(MINE, ME, False, 1e9, recorded_alive=True)
    assert got == RetireDecision(False, R.ACTIVE)
