"""The process-table seam: every psutil call of the package goes through `ProcessTable`.

Production uses `PsutilProcessTable`; tests inject a table whose handles raise
`psutil.AccessDenied` / `psutil.NoSuchProcess` where they want, without monkeypatching psutil.
Methods raise psutil's own exceptions; callers map them to `pid_error` / `argv_error` /
`FailureReason` values, never to success.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Protocol

import psutil

from . import _constants


class ProcessHandle(Protocol):
    """The slice of `psutil.Process` the package uses (a `psutil.Process` satisfies it).

    A handle remembers the create time it was opened with: psutil refuses to signal a
    different process that reused the PID (it raises `NoSuchProcess` instead).
    """

    @property
    def pid(self) -> int: ...

    def create_time(self) -> float: ...

    def cmdline(self) -> list[str]: ...

    def exe(self) -> str: ...

    def status(self) -> str: ...

    def is_running(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class ProcessTable(Protocol):
    """OS facts about processes and listening sockets."""

    def process(self, pid: int) -> ProcessHandle:
        """Open a handle; raises `psutil.NoSuchProcess` / `psutil.AccessDenied`."""
        ...

    def listening_pids(self) -> dict[int, set[int | None]]:
        """Every IPv4 TCP LISTEN port → owning PIDs (None where the OS hides the owner).

        One system-wide call; raises `psutil.AccessDenied` where that needs privileges (macOS).
        """
        ...

    def pid_listens_on(self, pid: int, port: int) -> bool:
        """Does `pid` itself hold a LISTEN socket on `port`? Raises psutil errors."""
        ...

    def lsof_pids(self, port: int, timeout: float) -> list[int] | None:
        """PIDs `lsof` reports listening on `port`; None if lsof is missing, failed or timed out."""
        ...

    def wait_gone(self, proc: ProcessHandle, timeout: float) -> bool:
        """Wait up to `timeout` for the process to exit; a zombie counts as gone."""
        ...

    def protected_pids(self) -> frozenset[int]:
        """The current process and all its ancestors: never signalled."""
        ...


def handle_gone(proc: ProcessHandle) -> bool:
    """Gone = not running (psutil also says so when the PID was reused) or a zombie."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


class PsutilProcessTable:
    """The real process table."""

    def process(self, pid: int) -> ProcessHandle:
        return psutil.Process(pid)

    def listening_pids(self) -> dict[int, set[int | None]]:
        table: dict[int, set[int | None]] = {}
        for conn in psutil.net_connections("tcp4"):
            if conn.status != psutil.CONN_LISTEN or not conn.laddr:
                continue
            table.setdefault(conn.laddr.port, set()).add(conn.pid)
        return table

    def pid_listens_on(self, pid: int, port: int) -> bool:
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in psutil.Process(pid).net_connections("tcp4")
        )

    def lsof_pids(self, port: int, timeout: float) -> list[int] | None:
        lsof = shutil.which("lsof")
        if lsof is None:
            return None
        try:
            done = subprocess.run(
                [lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-t"],
                capture_output=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        # lsof exits 1 both for "nothing found" and for errors; only digits count as an answer.
        pids = [int(tok) for tok in done.stdout.split() if tok.isdigit()]
        return pids or None

    def wait_gone(self, proc: ProcessHandle, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if handle_gone(proc):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            step = min(_constants.WAIT_POLL_S * 5, remaining)
            if isinstance(proc, psutil.Process):
                # wait_procs reaps our own children (so they do not linger as zombies).
                psutil.wait_procs([proc], timeout=step)
            else:
                time.sleep(min(_constants.WAIT_POLL_S, remaining))

    def protected_pids(self) -> frozenset[int]:
        me = psutil.Process(os.getpid())
        return frozenset({me.pid, *(p.pid for p in me.parents())})
