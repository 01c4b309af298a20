"""Fair handoff between processes, without a daemon and without giving up crash safety.

Unfairness came from the releaser: it unlocks and, a microsecond later, locks again, while the
waiters of other processes sleep in their backoff. So waiters announce themselves and the
releaser yields to them:

- A waiter keeps its descriptor open while it waits and holds a SHARED fcntl lock on one byte far
  beyond any record (``WAIT_OFFSET``) through it: "someone is waiting". On Linux flock and fcntl
  locks are independent, so this never touches the flock lock itself, and the kernel drops it
  when the waiter exits or crashes: nothing to clean up, nothing to go stale.
- A process that keeps re-taking the lock straight after its own release may do so for
  ``HOG_S`` (tiny critical sections keep their throughput); then, finding it free again moments
  after its release, it checks for announced waiters (an exclusive lock on that byte is refused
  while any other process holds a shared one) and, if there are any, gives them the lock first:
  it unlocks and waits like them, for a few milliseconds at most. The check costs two system
  calls and is made at most once per ``HOG_S`` while nobody waits.
- Announced waiters poll every ``WAITER_POLL_S`` for their first ``BRISK_WAIT_S`` (one
  ``flock`` call on the descriptor they keep), so a yielded lock is taken within a millisecond,
  then every ``PATIENT_POLL_S``; the releaser yields for about as long as it held the lock (up
  to ``MAX_YIELD_S``), so patient waiters of a long hold poll at least once in the window.

Used in flock mode on Linux only: in fcntl mode the byte would fall inside the whole-file lock,
and BSD systems tie flock and fcntl locks together. Elsewhere the lock is correct, only not fair.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from typing import Final

#: The announced byte: far beyond any record, so it never overlaps data (and never grows the file).
WAIT_OFFSET: Final = 1 << 40
#: How often an announced waiter tries again during the first ``BRISK_WAIT_S`` of its wait
#: (one flock call on a kept descriptor), and afterwards (never slower than ``poll_interval``).
WAITER_POLL_S: Final = 0.0005
BRISK_WAIT_S: Final = 2.0
PATIENT_POLL_S: Final = 0.005
#: A process may re-take the lock straight after its own release for this long (a streak: tiny
#: critical sections keep their throughput); past it, it yields if others announce they wait.
HOG_S: Final = 0.01
#: "Straight after": re-acquired within this long of this process's own release.
RETAKE_S: Final = 0.0005
#: A releaser yields for about as long as it held the lock, within these bounds: long enough
#: for a patient waiter to poll twice.
MIN_YIELD_S: Final = 0.004
MAX_YIELD_S: Final = 2 * PATIENT_POLL_S + 0.002
_CONTENTION: Final = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})


def applies(mode: str) -> bool:
    """Fair handoff is used for this lock mode on this platform."""
    return mode == "flock" and sys.platform.startswith("linux")


def announce(fd: int) -> bool:
    """Say "waiting" through ``fd``; False if the OS refused (then the wait is just unfair)."""
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, WAIT_OFFSET)
    except OSError:
        return False
    return True


def withdraw(fd: int) -> None:
    """No longer waiting (the process's shared byte lock is dropped)."""
    import fcntl

    with contextlib.suppress(OSError):  # best effort: closing the descriptor drops it anyway
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, WAIT_OFFSET)


def yield_window(held_for_s: float) -> float:
    """How long after its release a process yields to announced waiters."""
    return min(max(held_for_s, MIN_YIELD_S), MAX_YIELD_S)


def poll_ceiling(waited_s: float, poll_interval_s: float) -> float:
    """The longest pause between tries of an announced waiter that has waited ``waited_s``."""
    brisk = WAITER_POLL_S if waited_s < BRISK_WAIT_S else PATIENT_POLL_S
    return min(brisk, poll_interval_s)


def others_waiting(fd: int) -> bool:
    """Does any OTHER process announce itself waiting? (Our own locks never conflict.)"""
    import fcntl

    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, WAIT_OFFSET)
    except OSError as exc:
        return exc.errno in _CONTENTION
    fcntl.lockf(fd, fcntl.LOCK_UN, 1, WAIT_OFFSET)
    return False
