"""The in-process registry: which (device, inode) this process holds, and a gate per inode.

Why it exists (LCK-20, LCK-13, LCK-21):
- Threads of one process using different lock objects on one path must serialise. With fcntl
  locks the kernel would happily grant the lock twice to one process, and closing ANY descriptor
  of the file drops the process's lock - so a contender must never even open a descriptor while
  another thread of this process holds the inode. The per-inode gate is taken (non-blocking)
  BEFORE the descriptor is opened.
- The same thread (or asyncio task) re-acquiring a path it holds would deadlock on itself:
  it gets ``LockReentryError`` immediately instead.
- ``probe``/``read_lock_record`` in the holding process answer from here instead of opening and
  closing a second descriptor.
- After ``fork`` the child is not the holder: an at-fork hook forgets every held lock in the
  child and closes the child's copies WITHOUT unlocking (a flock unlock through the inherited
  descriptor would release the parent's lock).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import Final, Protocol, TypeVar

T = TypeVar("T")
# A thread of ours sits between "gate taken" and "held" (or the reverse) for microseconds;
# a reader waits at most this many 1 ms naps for it to settle before giving up.
_SETTLE_TRIES: Final = 200

Key = tuple[int, int]
Owner = tuple[int, int | None]  # (thread ident, id of the asyncio task or None)


class _Forgettable(Protocol):
    def _forget_after_fork(self) -> None: ...


class Held:
    """What this process holds on one inode.

    A plain slotted class rather than a frozen dataclass: one is built per acquisition and a
    frozen dataclass's ``object.__setattr__`` initialiser costs a measurable share of it.
    """

    __slots__ = ("fd", "lock", "mode", "owner")

    def __init__(self, owner: Owner, fd: int, mode: str, lock: _Forgettable) -> None:
        self.owner = owner
        self.fd = fd
        self.mode = mode
        self.lock = lock


class Registry:
    """Process-global state; one instance (``REGISTRY``)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self.create_mutex = threading.Lock()
        self._gates: dict[Key, threading.Lock] = {}
        self._held: dict[Key, Held] = {}
        self._released: dict[Key, list[float]] = {}

    def gate(self, key: Key) -> threading.Lock:
        gate = self._gates.get(key)
        if gate is None:
            with self._mutex:
                gate = self._gates.setdefault(key, threading.Lock())
        return gate

    def is_reentry(self, key: Key, owner: Owner) -> bool:
        """True if ``owner`` already holds ``key`` (waiting for itself would never end).

        Two different asyncio tasks on one thread may wait for each other; a blocking caller
        (task None) on the thread that holds the lock may not.
        """
        held = self._held.get(key)
        return held is not None and self.is_reentry_of(held.owner, owner)

    @staticmethod
    def is_reentry_of(holder: Owner, owner: Owner) -> bool:
        """Would `owner` waiting for `holder` wait for itself?"""
        if holder[0] != owner[0]:
            return False
        return holder[1] is None or owner[1] is None or holder[1] == owner[1]

    def mark_held(self, key: Key, held: Held) -> None:
        self._held[key] = held

    def mark_released(self, key: Key, held_for_s: float = 0.0, at: float | None = None) -> None:
        """``key`` is free again; released ``at`` (monotonic, now if None) after ``held_for_s``."""
        self._held.pop(key, None)
        when = time.monotonic() if at is None else at
        entry = self._released.get(key)
        if entry is None:
            self._released[key] = [when, held_for_s, -math.inf]
        else:
            entry[0] = when
            entry[1] = held_for_s

    def last_release(self, key: Key) -> list[float]:
        """[when this process last released ``key`` (monotonic), how long it had held it, when
        a re-take should next look for waiters (``_fairness``)], mutable; None-free defaults."""
        entry = self._released.get(key)
        if entry is None:
            entry = self._released[key] = [-math.inf, 0.0, -math.inf]
        return entry

    def held(self, key: Key) -> Held | None:
        return self._held.get(key)

    def held_keys(self) -> list[Key]:
        return list(self._held)

    def after_fork_in_child(self) -> None:
        held = list(self._held.values())
        # Fresh primitives: a gate or mutex held by a parent thread that does not exist in the
        # child would otherwise stay locked forever.
        self._mutex = threading.Lock()
        self.create_mutex = threading.Lock()
        self._gates = {}
        self._held = {}
        self._released = {}
        for entry in held:
            entry.lock._forget_after_fork()


REGISTRY = Registry()


def _after_fork_in_child() -> None:  # pragma: no cover - runs in forked children only
    REGISTRY.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def file_key(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino)


def with_own_fd_or_holder(
    key: Key, own: Callable[[], T], from_holder: Callable[[Held], T]
) -> T | None:
    """Run ``own`` (which may open and close a descriptor of ``key``) only when that cannot
    drop a lock this process holds; if this process holds ``key``, run ``from_holder`` instead.

    Closing any descriptor of a file drops the process's fcntl locks on it, so ``own`` runs with
    the inode's gate taken. ``None`` if a thread of ours kept the gate busy without holding.
    """
    gate = REGISTRY.gate(key)
    for _ in range(_SETTLE_TRIES):
        held = REGISTRY.held(key)
        if held is not None:
            return from_holder(held)
        if gate.acquire(blocking=False):
            try:
                return own()
            finally:
                gate.release()
        time.sleep(0.001)
    return None  # pragma: no cover - a thread of ours stalled inside an attempt for 200 ms
