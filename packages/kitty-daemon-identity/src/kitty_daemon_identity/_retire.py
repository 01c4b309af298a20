"""Self-retirement decision (DID-22): a pure function of explicit inputs.

``idle_s`` and ``busy`` are arguments rather than reads of a process-global clock, so the table
is testable exhaustively and long test sessions cannot make it flake.
"""

from __future__ import annotations

from enum import StrEnum

from kitty_filelock import frozen_dataclass

from ._constants import IDLE_RETIREMENT_SECONDS, START_TIME_TOLERANCE_S
from ._state import StateRecord

__all__ = ["DaemonSelf", "RetireDecision", "RetireReason", "should_retire"]


class RetireReason(StrEnum):
    BUSY = "busy"
    SUPERSEDED = "superseded"
    IDLE_TIMEOUT = "idle_timeout"
    IDLE_TIMEOUT_SINGLETON = "idle_timeout_singleton"
    ACTIVE = "active"


@frozen_dataclass
class DaemonSelf:
    """The identity a running daemon compares against the state record."""

    pid: int
    port: int
    process_started_at: float


@frozen_dataclass
class RetireDecision:
    retire: bool
    reason: RetireReason


def am_singleton(state: StateRecord | None, me: DaemonSelf) -> bool:
    """The state record names my pid, port and start time (±1 s)."""
    return (
        state is not None
        and state.pid == me.pid
        and state.port == me.port
        and abs(state.process_started_at - me.process_started_at) <= START_TIME_TOLERANCE_S
    )


def should_retire(
    state: StateRecord | None,
    me: DaemonSelf,
    busy: bool,
    idle_s: float,
    *,
    recorded_alive: bool,
    idle_limit_s: float = IDLE_RETIREMENT_SECONDS,
    retire_singleton_on_idle: bool = False,
) -> RetireDecision:
    """Decide whether the daemon ``me`` should exit now (first matching rule wins).

    1. busy → keep (queued or running work is never dropped, even when superseded);
    2. a state record names another daemon that is alive with the recorded start time → retire
       (``superseded``); ``recorded_alive`` must include the start-time check, so a PID the kernel
       reused for an unrelated process never makes a daemon retire;
    3. idle past the limit and not the singleton → retire (``idle_timeout``);
    4. idle past the limit, the singleton, and configured to → retire (``idle_timeout_singleton``);
    5. otherwise keep (``active``).
    """
    if busy:
        return RetireDecision(False, RetireReason.BUSY)
    singleton = am_singleton(state, me)
    if state is not None and not singleton and recorded_alive:
        return RetireDecision(True, RetireReason.SUPERSEDED)
    if idle_s >= idle_limit_s:
        if not singleton:
            return RetireDecision(True, RetireReason.IDLE_TIMEOUT)
        if retire_singleton_on_idle:
            return RetireDecision(True, RetireReason.IDLE_TIMEOUT_SINGLETON)
    return RetireDecision(False, RetireReason.ACTIVE)
