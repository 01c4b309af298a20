"""The process-table seam: every psutil call of the package goes through `ProcessTable`.

Production uses `PsutilProcessTable`; tests inject a table whose handles raise
`psutil.AccessDenied` / `psutil.NoSuchProcess` where they want, without monkeypatching psutil.
Methods raise psutil's own exceptions; callers map them to `pid_error` / `argv_error` /
`FailureReason` values, never to success.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Iterator, Mapping
from typing import Final, Protocol

from . import _constants
from ._ownership import ListeningSocket, linux_listening_sockets
from ._sockdiag import listening_inodes

# psutil is imported inside the functions that use it (issue 15): a scan that finds nothing
# listening (the doctor's default run) never needs it, and importing it costs ~25 ms.


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

    def uids(self) -> tuple[int, ...]:
        """(real, effective, saved) uids (POSIX)."""
        ...

    def is_running(self) -> bool: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class ProcessTable(Protocol):
    """OS facts about processes and listening sockets."""

    def process(self, pid: int) -> ProcessHandle:
        """Open a handle; raises `psutil.NoSuchProcess` / `psutil.AccessDenied`."""
        ...

    def listening_pids(
        self, ports: Collection[int] | None = None, hint_pids: Collection[int] = ()
    ) -> dict[int, set[int | None]]:
        """IPv4 TCP LISTEN port → owning PIDs (None where the OS hides the owner).

        One system-wide call; raises `psutil.AccessDenied` where that needs privileges (macOS).
        `ports` may restrict the answer to those ports; `hint_pids` (self-reported owners) may be
        checked first, so a socket found there is attributed to them without a full walk.
        """
        ...

    def pid_listens_on(self, pid: int, port: int) -> bool:
        """Does `pid` itself hold a LISTEN socket on `port`? Raises psutil errors."""
        ...

    def listening_sockets(self, port: int, pid: int | None) -> list[ListeningSocket] | None:
        """Every LISTEN socket on `port` (IPv4 and IPv6) with its uid, `held` if open in `pid`.

        None where the OS cannot tell: no owner is then provable (see `_ownership`).
        """
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
    import psutil

    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


_PROC_NET_TCP: Final = "/proc/net/tcp"
_TCP_LISTEN_STATE: Final = "0A"


def _proc_listening_inodes(path: str) -> dict[str, int] | None:
    """LISTEN socket inode → port from a /proc/net/tcp-format file; None if unreadable.

    Only LISTEN rows are decoded. psutil decodes every row, and a busy host (or a test run)
    holds thousands of TIME_WAIT rows, which made one scan cost ~50 ms instead of ~1 ms.
    """
    inodes: dict[str, int] = {}
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            fh.readline()  # header
            for line in fh:
                fields = line.split(None, 10)
                if len(fields) < 10 or fields[3] != _TCP_LISTEN_STATE:
                    continue
                _, _, port_hex = fields[1].partition(":")
                inodes[fields[9]] = int(port_hex, 16)
    except (OSError, ValueError):
        return None
    return inodes


def _socket_inodes_of(pid: str, wanted: Mapping[str, str]) -> Iterator[str]:
    """Inodes from `wanted` (link text → inode) among the open fds of /proc/<pid>."""
    try:
        fds = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return  # another user's process, or gone: its sockets stay unattributed
    with fds:
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(fd.path))
            except OSError:
                continue
            if inode is not None:
                yield inode


def _linux_listening_pids(
    ports: Collection[int] | None = None,
    hint_pids: Collection[int] = (),
    path: str = _PROC_NET_TCP,
) -> dict[int, set[int | None]] | None:
    """Same answer as psutil.net_connections("tcp4") restricted to LISTEN rows (Linux)."""
    inodes = listening_inodes()
    if inodes is None:
        inodes = _proc_listening_inodes(path)
    if inodes is None:
        return None
    if ports is not None:
        keep = set(ports)
        inodes = {inode: port for inode, port in inodes.items() if port in keep}
    table: dict[int, set[int | None]] = {port: set() for port in inodes.values()}
    wanted = {f"socket:[{inode}]": inode for inode in inodes}
    owned: set[str] = set()
    # Self-reported owners first: usually they hold every socket we ask about, and looking at a
    # few fd tables is much cheaper than walking every process on the machine.
    for pid in sorted(set(hint_pids)):
        for inode in _socket_inodes_of(str(pid), wanted):
            table[inodes[inode]].add(pid)
            owned.add(inode)
    missing = {text: inode for text, inode in wanted.items() if inode not in owned}
    if missing:
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                for inode in _socket_inodes_of(entry.name, missing):
                    table[inodes[inode]].add(int(entry.name))
                    owned.add(inode)
    for inode, port in inodes.items():
        if inode not in owned:
            table[port].add(None)  # the OS hides the owner, exactly like psutil's pid=None
    return table


def _psutil_listening_sockets(
    port: int, pid: int | None
) -> list[ListeningSocket] | None:  # pragma: no cover - not Linux
    """The portable answer: the socket's uid is its owning process's real uid."""
    import psutil

    try:
        conns = psutil.net_connections("inet")
    except psutil.Error:
        return None
    sockets: list[ListeningSocket] = []
    for conn in conns:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        uid: int | None = None
        if conn.pid is not None:
            try:
                uid = psutil.Process(conn.pid).uids().real
            except (psutil.Error, AttributeError):  # Windows processes have no uids
                uid = None
        sockets.append(ListeningSocket(uid, pid is not None and conn.pid == pid))
    return sockets


class PsutilProcessTable:
    """The real process table."""

    def process(self, pid: int) -> ProcessHandle:
        import psutil

        return psutil.Process(pid)

    def listening_pids(
        self, ports: Collection[int] | None = None, hint_pids: Collection[int] = ()
    ) -> dict[int, set[int | None]]:
        if os.path.exists(_PROC_NET_TCP):
            fast = _linux_listening_pids(ports, hint_pids)
            if fast is not None:
                return fast
        import psutil

        keep = None if ports is None else set(ports)
        table: dict[int, set[int | None]] = {}
        for conn in psutil.net_connections("tcp4"):
            if conn.status != psutil.CONN_LISTEN or not conn.laddr:
                continue
            if keep is None or conn.laddr.port in keep:
                table.setdefault(conn.laddr.port, set()).add(conn.pid)
        return table

    def pid_listens_on(self, pid: int, port: int) -> bool:
        import psutil

        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in psutil.Process(pid).net_connections("tcp4")
        )

    def listening_sockets(self, port: int, pid: int | None) -> list[ListeningSocket] | None:
        if os.path.exists(_PROC_NET_TCP):
            return linux_listening_sockets(port, pid)
        return _psutil_listening_sockets(port, pid)  # pragma: no cover - not Linux

    def lsof_pids(self, port: int, timeout: float) -> list[int] | None:
        # Imported here: the lsof fallback is rare, and shutil + subprocess cost ~5 ms of every
        # short command's start (`kitty-doctor --json`).
        import shutil
        import subprocess

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
        import psutil

        deadline = time.monotonic() + timeout
        while True:
            if handle_gone(proc):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            step = min(_constants.WAIT_POLL_S, remaining)
            if isinstance(proc, psutil.Process):
                # wait_procs reaps our own children (so they do not linger as zombies).
                psutil.wait_procs([proc], timeout=step)
            else:
                time.sleep(min(_constants.WAIT_POLL_S, remaining))

    def protected_pids(self) -> frozenset[int]:
        import psutil

        me = psutil.Process(os.getpid())
        return frozenset({me.pid, *(p.pid for p in me.parents())})
