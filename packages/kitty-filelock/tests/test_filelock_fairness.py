"""Fair handoff across processes (issue 11): a releaser that re-takes the lock at once used to
starve the others (1 acquisition in ~4,000). Counted, not timed: the run ends at a total count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WORKER = r"""
import sys, time
from kitty_filelock import MachineFileLock
lock_path, counter, goal = sys.argv[1], sys.argv[2], int(sys.argv[3])
lock = MachineFileLock(lock_path, acquire_timeout=60)
print("ready", flush=True)
sys.stdin.readline()
mine = 0
while True:
    with lock:
        with open(counter, "r+") as fh:
            value = int(fh.read() or "0")
            if value >= goal:
                break
            fh.seek(0)
            fh.write(str(value + 1))
            fh.truncate()
        mine += 1
        spin = time.monotonic() + 0.001  # a 1 ms critical section, then straight back
        while time.monotonic() < spin:
            pass
print(mine, flush=True)
"""
PROCESSES = 4
GOAL = 600


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fair handoff is Linux flock")
def test_no_process_is_starved_by_a_releaser_that_comes_straight_back(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    lock_path = tmp_path / "fair.lock"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(lock_path), str(counter), str(GOAL)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        counts = []
        for proc in procs:
            assert proc.stdout is not None
            counts.append(int(proc.stdout.readline()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
    assert sum(counts) == GOAL  # exclusive: every increment happened under the lock
    # A fair lock gives each about a quarter; starvation gave one of them almost nothing.
    assert min(counts) >= GOAL // (PROCESSES * 4), counts
