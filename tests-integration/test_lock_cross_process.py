"""INT-10 / LCK-08 / LCK-09 / LCK-21: the lock between real processes.

Workers (``_lock_workers.py``) run as ``_child.py lock ...`` with this interpreter; they are
ordered with pipes (ready/go lines), never sleeps, and the `procs` fixture reaps every one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from _harness import Procs, child_argv
from kitty_filelock import LockTimeout, MachineFileLock, probe, read_lock_record

POSIX = hasattr(os, "fork")
MODES = ["flock", "fcntl"] if POSIX else ["msvcrt"]


def start(procs: Procs, *args: str) -> subprocess.Popen[bytes]:
    """A lock worker (`_child.py lock ...`) speaking lines on its stdout, reading go from stdin."""
    return procs.popen(
        child_argv("lock", *args),
        name=f"lock-{args[0]}",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def line(proc: subprocess.Popen[bytes]) -> list[str]:
    assert proc.stdout is not None
    return proc.stdout.readline().decode().split()


def send(proc: subprocess.Popen[bytes], text: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(text.encode())
    proc.stdin.flush()


@pytest.mark.parametrize("mode", MODES)
def test_four_processes_times_500_increments_exact_and_never_overlapping(
    tmp_path: Path, procs: Procs, mode: str
) -> None:
    n_procs, n_incr = 4, 500
    lock_path, counter_path = tmp_path / "counter.lock", tmp_path / "counter.txt"
    counter_path.write_text("0")
    workers = [
        start(
            procs,
            "counter",
            str(lock_path),
            str(counter_path),
            str(tmp_path / f"log{i}.json"),
            str(n_incr),
            mode,
        )
        for i in range(n_procs)
    ]
    for worker in workers:
        assert line(worker) == ["ready"]
    for worker in workers:
        send(worker, "go\n")
    for worker in workers:
        assert line(worker) == ["done"]
        assert worker.wait(timeout=120) == 0

    assert int(counter_path.read_text()) == n_procs * n_incr  # no lost update
    spans: list[tuple[int, int, int]] = []
    for i in range(n_procs):
        log = json.loads((tmp_path / f"log{i}.json").read_text())
        spans.extend((enter, leave, log["pid"]) for enter, leave in log["spans"])
    spans.sort()
    assert len(spans) == n_procs * n_incr
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlaps == []  # no two critical sections ever overlapped
    assert len({pid for _, _, pid in spans}) == n_procs
    assert lock_path.read_bytes() == b""  # the last holder cleared its record


@pytest.mark.skipif(not POSIX, reason="SIGKILL")
def test_sigkilled_holder_hands_over_to_a_waiter_whose_record_replaces_it(
    tmp_path: Path, procs: Procs
) -> None:
    lock_path = tmp_path / "crash.lock"
    holder = start(procs, "hold", str(lock_path), "auto")
    locked = line(holder)
    assert locked[0] == "locked"
    holder_pid = int(locked[1])
    waiter = start(procs, "wait", str(lock_path), "60")
    assert line(waiter) == ["waiting"]
    # Still held while the holder lives (and the OS names it as the true holder on Linux).
    before = probe(lock_path)
    assert before.held is True
    assert before.holder_pid == holder_pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    got = line(waiter)
    assert got[0] == "acquired"
    waiter_pid = int(got[1])
    record = read_lock_record(lock_path)
    assert record is not None
    assert record.pid == waiter_pid != holder_pid
    assert record.label == "int-waiter"
    assert probe(lock_path).held is True
    assert waiter.stdin is not None
    waiter.stdin.close()
    assert waiter.wait(timeout=30) == 0


def test_backdated_record_under_a_live_holder_times_out_a_contender(
    tmp_path: Path, procs: Procs
) -> None:
    lock_path = tmp_path / "hung.lock"
    holder = start(procs, "hold", str(lock_path), "auto")
    assert line(holder)[0] == "locked"
    # Make the live holder look ancient: rewrite its record (flock: another fd is harmless).
    record = json.loads(lock_path.read_text())
    record["acquired_at"] = "2000-01-01T00:00:00.000Z"
    lock_path.write_text(json.dumps(record))
    waiter = start(procs, "wait", str(lock_path), "0.5")
    assert line(waiter) == ["waiting"]
    got = line(waiter)
    assert got == ["timeout", str(holder.pid)]
    assert probe(lock_path).held is True


@pytest.mark.skipif(not POSIX, reason="os.fork")
def test_forked_child_is_not_the_holder_and_a_third_process_is_still_excluded(
    tmp_path: Path, procs: Procs
) -> None:
    lock_path = tmp_path / "fork.lock"
    parent = start(procs, "fork", str(lock_path))
    assert line(parent) == ["child-not-holder", "parent-holds"]
    third = start(procs, "wait", str(lock_path), "0.3")
    assert line(third) == ["waiting"]
    assert line(third)[0] == "timeout"
    assert parent.stdin is not None
    parent.stdin.close()
    assert parent.wait(timeout=30) == 0


def test_async_waiter_keeps_the_loop_ticking_against_a_holder_process(
    tmp_path: Path, procs: Procs
) -> None:
    lock_path = tmp_path / "async.lock"
    holder = start(procs, "hold", str(lock_path), "auto")
    assert line(holder)[0] == "locked"

    async def scenario() -> list[float]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        with pytest.raises(LockTimeout):
            async with MachineFileLock(lock_path, acquire_timeout=1.0):
                pass
        done.set()
        await task
        return gaps

    gaps = asyncio.run(scenario())
    assert len(gaps) >= 20
    assert max(gaps) < 0.5  # a hang cap: a blocking wait would show one ~1 s gap
