"""Worker processes for the cross-process lock matrices (INT-10), run through `_child.py`:

    python _child.py lock counter <lock> <counter> <log> <n> <mode>
    python _child.py lock hold <lock> <mode>
    python _child.py lock wait <lock> <timeout_s>
    python _child.py lock fork <lock>

Every worker speaks a tiny line protocol on stdout ("ready", "locked <pid>", ...) and takes its
go-signal from stdin, so the tests order processes with pipes, never with sleeps.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from kitty_filelock import LockTimeout, MachineFileLock


def say(*words: object) -> None:
    print(*words, flush=True)


def counter(lock_path: str, counter_path: str, log_path: str, n: int, mode: str) -> None:
    """n increments of a shared counter file under the lock; logs each critical section."""
    lock = MachineFileLock(lock_path, acquire_timeout=120, mode=mode)
    counter_file = Path(counter_path)
    spans: list[tuple[int, int]] = []
    say("ready")
    sys.stdin.readline()  # the go signal: all workers start together
    for _ in range(n):
        with lock:
            enter = time.monotonic_ns()
            value = int(counter_file.read_text() or "0")
            counter_file.write_text(str(value + 1))
            spans.append((enter, time.monotonic_ns()))
    Path(log_path).write_text(json.dumps({"pid": os.getpid(), "spans": spans}))
    say("done")


def hold(lock_path: str, mode: str) -> None:
    """Hold until stdin closes (or we are killed)."""
    lock = MachineFileLock(lock_path, acquire_timeout=120, mode=mode, label="int-holder")
    lock.acquire()
    say("locked", os.getpid())
    sys.stdin.read()
    lock.release()
    say("released")


def wait(lock_path: str, timeout_s: float) -> None:
    """Announce, then block in acquire(); report who we are once we hold the lock."""
    lock = MachineFileLock(lock_path, acquire_timeout=timeout_s, label="int-waiter")
    say("waiting")
    try:
        lock.acquire()
    except LockTimeout as exc:
        holder = exc.holder.pid if exc.holder else None
        say("timeout", holder)
        return
    say("acquired", os.getpid(), f"{lock.waited_s:.6f}")
    sys.stdin.read()
    lock.release()


def fork(lock_path: str) -> None:
    """LCK-21 from a fresh interpreter: hold, fork; the child must not be (or free) the holder."""
    lock = MachineFileLock(lock_path, acquire_timeout=5)
    lock.acquire()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        verdict = "child-not-holder" if not lock.is_held and lock.record is None else "bad"
        lock.release()  # must be a no-op: unlocking here would free the parent's flock
        os.write(write_end, verdict.encode())
        os._exit(0)
    os.close(write_end)
    verdict = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    say(verdict, "parent-holds" if lock.is_held else "parent-lost")
    sys.stdin.read()
    lock.release()


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    if cmd == "counter":
        counter(args[0], args[1], args[2], int(args[3]), args[4])
    elif cmd == "hold":
        hold(args[0], args[1])
    elif cmd == "wait":
        wait(args[0], float(args[1]))
    elif cmd == "fork":
        fork(args[0])
    else:
        raise SystemExit(f"unknown worker command {cmd!r}")
    return 0
