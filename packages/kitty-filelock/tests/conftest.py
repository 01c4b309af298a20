"""Fixtures for kitty-filelock's own tests: real holder processes driven over pipes.

Self-contained on purpose: these tests also run against the installed wheel in a venv that has
nothing but kitty-filelock and the test tools (``nox -s standalone_filelock``), so a holder is a
``python -c`` child that imports only the installed package. Ordering is by pipes, never sleeps.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

HOLDER_CODE = r"""
import datetime as dt, json, os, sys
from kitty_filelock import MachineFileLock

path, mode, backdate_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
lock = MachineFileLock(path, mode=mode, label="holder", max_hold=5.0)
lock.acquire(timeout=30)
if backdate_s:
    # Rewrite the record IN the locked descriptor (a second descriptor's close would drop an
    # fcntl lock): same holder, acquired_at pushed into the past.
    record = json.loads(os.pread(lock._fd, 4096, 0))
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=backdate_s)
    record["acquired_at"] = old.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    os.ftruncate(lock._fd, 0)
    os.pwrite(lock._fd, json.dumps(record).encode(), 0)
print("locked", os.getpid(), flush=True)
sys.stdin.read()  # hold until the test closes our stdin
lock.release()
print("released", flush=True)
"""


def python_argv() -> list[str]:
    """This interpreter, with -P if we run with -P (the standalone session does)."""
    return [sys.executable, *(["-P"] if sys.flags.safe_path else [])]


@dataclass
class Holder:
    """A child process holding a lock until ``release()`` (or until killed)."""

    proc: subprocess.Popen[str]
    pid: int = 0

    def release(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        assert self.proc.stdout.readline().strip() == "released"
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)


class SpawnHolder(Protocol):
    def __call__(self, path: Path, *, mode: str = ..., backdate_s: float = ...) -> Holder: ...


@dataclass
class _Spawner:
    holders: list[Holder] = field(default_factory=list)

    def __call__(self, path: Path, *, mode: str = "auto", backdate_s: float = 0.0) -> Holder:
        proc = subprocess.Popen(
            [*python_argv(), "-c", HOLDER_CODE, str(path), mode, str(backdate_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holder = Holder(proc)
        self.holders.append(holder)
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[:1] == ["locked"], f"holder failed to lock {path}: {line}"
        holder.pid = int(line[1])
        return holder


@pytest.fixture
def spawn_holder() -> Iterator[SpawnHolder]:
    """Start lock-holding children; every one is killed and reaped at teardown."""
    spawner = _Spawner()
    try:
        yield spawner
    finally:
        for holder in spawner.holders:
            if holder.proc.poll() is None:
                holder.proc.kill()
            holder.proc.wait(timeout=30)
            for stream in (holder.proc.stdin, holder.proc.stdout):
                if stream is not None:
                    stream.close()


TRY_CODE = r"""
import sys
from kitty_filelock import LockTimeout, MachineFileLock

try:
    MachineFileLock(sys.argv[1], mode=sys.argv[2]).acquire(timeout=0)
except LockTimeout:
    print("timeout")
else:
    print("acquired")
"""


class TryLockInChild(Protocol):
    def __call__(self, path: Path, mode: str = ...) -> str: ...


def _try_lock_in_child(path: Path, mode: str = "auto") -> str:
    """One non-blocking attempt from a fresh process: "acquired" or "timeout"."""
    done = subprocess.run(
        [*python_argv(), "-c", TRY_CODE, str(path), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def try_lock_in_child() -> TryLockInChild:
    return _try_lock_in_child


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "locks" / "test.lock"
