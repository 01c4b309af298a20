"""Helpers every benchmark module shares (bench/run.py puts this directory on sys.path)."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    """The sample at quantile `q` (0..1) of `values`, nearest rank on the sorted samples."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def read_line(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> bytes:
    """The first stdout line of `proc`, bounded in time (a hang cap, not a measurement)."""
    assert proc.stdout is not None
    fd, buf = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise TimeoutError(f"pid {proc.pid}: no line within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"pid {proc.pid} exited before printing a line")
            buf += chunk
    return buf.split(b"\n", 1)[0]


def doctor_argv() -> list[str]:
    """The `kitty-doctor` console script beside this interpreter (what a user runs)."""
    script = Path(sys.executable).with_name("kitty-doctor")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "kitty_doctor"]  # unusual layouts
