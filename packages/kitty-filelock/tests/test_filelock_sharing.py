"""One lock OBJECT shared by threads or asyncio tasks (issue 11 §1-2): each waits its turn and
only the one that acquired may release; a non-owner's release never touches the kernel lock."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kitty_filelock import LockNotOwnedError, LockReentryError, LockTimeout, MachineFileLock

if TYPE_CHECKING:
    from conftest import TryLockInChild


def test_a_second_thread_on_the_same_object_waits_and_cannot_release(
    lock_path: Path, try_lock_in_child: TryLockInChild
) -> None:
    lock = MachineFileLock(lock_path, acquire_timeout=30)
    inside = threading.Event()
    leave = threading.Event()
    events: list[str] = []

    def holder() -> None:
        with lock:
            events.append("A-in")
            inside.set()
            leave.wait(30)
            events.append("A-out")

    a = threading.Thread(target=holder)
    a.start()
    assert inside.wait(30)
    with pytest.raises(LockTimeout):
        lock.acquire(timeout=0.1)  # waits its turn: not "already locked by this thread"
    with pytest.raises(LockNotOwnedError) as info:
        lock.release()
    assert info.value.path == str(lock_path)
    assert lock.is_held
    # The kernel lock is still A's: another process cannot get in.
    assert try_lock_in_child(lock_path) == "timeout"

    def second() -> None:
        with lock:
            events.append("B-in")

    b = threading.Thread(target=second)
    b.start()
    leave.set()
    a.join(30)
    b.join(30)
    assert events == ["A-in", "A-out", "B-in"]
    assert not lock.is_held


def test_the_owner_still_gets_a_reentry_error(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path)
    with lock, pytest.raises(LockReentryError):
        lock.acquire(timeout=0)


async def test_tasks_sharing_one_object_take_turns(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path, acquire_timeout=30)
    order: list[str] = []
    first_in = asyncio.Event()

    async def one() -> None:
        async with lock:
            order.append("1-in")
            first_in.set()
            await asyncio.sleep(0.05)
            order.append("1-out")

    async def two() -> None:
        await first_in.wait()
        with pytest.raises(LockNotOwnedError):
            lock.release()  # task 1 holds it
        async with lock:
            order.append("2-in")
        order.append("2-out")

    await asyncio.gather(one(), two())
    assert order == ["1-in", "1-out", "2-in", "2-out"]


async def test_a_task_gets_a_reentry_error_on_its_own_hold(lock_path: Path) -> None:
    lock = MachineFileLock(lock_path)
    async with lock:
        with pytest.raises(LockReentryError):
            await lock.acquire_async(timeout=0)
