"""Module-level budgets and limits (SPEC §0.7). Read at call time so tests can patch them."""

from __future__ import annotations

from typing import Final

# One start-time tolerance in kitty: kitty-filelock's, which owns the start-time reader (issue 12).
# Re-bound here so the escalation reads (and tests patch) it as `_constants.START_TIME_TOLERANCE_S`.
from kitty_filelock import START_TIME_TOLERANCE_S as START_TIME_TOLERANCE_S

#: Connect phase of a scan: a listener that neither accepts nor refuses within this is `suspect`.
CONNECT_TIMEOUT_S: Final = 0.2
#: Whole health exchange (connect, request, response) per open port.
HEALTH_TIMEOUT_S: Final = 0.5
#: Health attempts for the recorded singleton before ensure_daemon reports it unresponsive.
RECORDED_HEALTH_ATTEMPTS: Final = 3
#: `lsof` fallback for listener PIDs when the OS hides the socket table (macOS without privileges).
LSOF_TIMEOUT_S: Final = 0.75
#: Escalation stage budgets (SWP-10); every target runs the stages in parallel with the others.
HTTP_STAGE_S: Final = 1.5
TERM_STAGE_S: Final = 1.5
KILL_STAGE_S: Final = 0.5
PORT_CLOSE_WAIT_S: Final = 0.5
#: ensure_daemon budgets (SWP-14..SWP-19).
SPAWN_LOCK_TIMEOUT_S: Final = 30.0
#: Ceiling of the spawn-lock retry backoff. The lock's default (50 ms) would add up to 50 ms per
#: hand-over; K callers queue behind one spawn, so a short ceiling keeps convergence fast.
SPAWN_LOCK_POLL_S: Final = 0.005
SPAWN_TIMEOUT_S: Final = 15.0
SPAWN_PORT_RETRIES: Final = 3
STOP_RECORDED_GRACE_S: Final = 2.0
LOG_ROTATE_BYTES: Final = 5 * 1024 * 1024
#: How long a free-port candidate may take to refuse before it counts as taken (SWP-17).
FREE_PORT_CONNECT_S: Final = 0.1
#: Lines of the family log quoted in a DaemonStartError (SWP-19).
LOG_TAIL_LINES: Final = 20
#: Health polling while a spawned daemon starts: first wait, growth factor, ceiling.
SPAWN_POLL_INITIAL_S: Final = 0.05
SPAWN_POLL_MAX_S: Final = 0.25
SPAWN_POLL_GROWTH: Final = 1.5
#: Polling granularity while waiting for a process to exit or a port to close.
WAIT_POLL_S: Final = 0.01
