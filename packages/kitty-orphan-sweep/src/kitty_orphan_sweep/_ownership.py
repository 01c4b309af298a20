"""Socket ownership: the proof a port, a state record or a health payload can never give (ADR 0004).

Anyone on the machine can bind a port a daemon released and answer its health with the recorded
pid, port, start time and scope. So before a secret (the scope key) goes to a listener, or a
recorded singleton is handed out for reuse, the kernel's socket table must show that every socket
listening on that port is open in the expected process, that the process is still the one
expected (its OS create time equals the expected one, exactly: same clock, no tolerance), and
that the sockets belong to the uid owning the daemon root, root included: root's key never goes
to another user's socket. Anything the OS cannot tell is "unproven", never "proven".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Protocol

from kitty_filelock import frozen_dataclass

from ._sockdiag import all_listeners

# psutil is imported inside the functions that use it: see _proctable.


__all__ = [
    "ListeningSocket",
    "ProcessFacts",
    "SocketFacts",
    "owner_uid",
    "prove_process_owns_port",
    "prove_socket_owner",
]

_TABLES: Final = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN: Final = "0A"
_MAX_ROWS: Final = 1_000_000  # bound on each table's read loop


@frozen_dataclass
class ListeningSocket:
    """One LISTEN socket on a port, as the OS reports it."""

    #: The uid the kernel records for the socket (None where the OS does not say).
    uid: int | None
    #: The process asked about has this socket open (one of its file descriptors).
    held: bool


class SocketFacts(Protocol):
    """The OS facts the proof needs (a `ProcessTable` provides them)."""

    def listening_sockets(self, port: int, pid: int | None) -> list[ListeningSocket] | None:
        """Every LISTEN socket on `port` (IPv4 and IPv6), `held` meaning open in `pid`.

        None where the OS cannot tell (no socket table, or not permitted to read it).
        """
        ...


class _Started(Protocol):
    def create_time(self) -> float: ...


class ProcessFacts(SocketFacts, Protocol):
    """Socket facts plus opening a process (a `ProcessTable` provides both)."""

    def process(self, pid: int) -> _Started: ...


def owner_uid(root: Path) -> int | None:
    """The uid owning the daemon root: whose sockets may receive its key (None: unknown)."""
    try:
        return os.stat(root).st_uid
    except OSError:
        return None


def prove_socket_owner(
    facts: SocketFacts,
    port: int,
    *,
    uid: int | None,
    pid: int | None = None,
    create_time: float | None = None,
    current_create_time: float | None = None,
) -> str | None:
    """None when the proof holds; otherwise why not, as one plain sentence (no secret in it).

    With `pid`, every listening socket on `port` must be open in that process and the process's
    `current_create_time` (read right before, from the OS) must equal `create_time`. Without
    `pid` (a listener whose process the OS hides), only the socket's uid can be proven.
    """
    if uid is None:
        return "the owner of the daemon root is unknown, so no socket can be proven to be its"
    sockets = facts.listening_sockets(port, pid)
    if sockets is None:
        return f"the OS socket table cannot be read here, so the owner of port {port} is unproven"
    if not sockets:
        return f"nothing listens on port {port} any more"
    foreign = sorted({s.uid for s in sockets if s.uid != uid}, key=str)
    if foreign:
        who = ", ".join("unknown" if u is None else str(u) for u in foreign)
        return f"a socket listening on port {port} belongs to uid {who}, not uid {uid}"
    if pid is None:
        return None
    if not all(s.held for s in sockets):
        return f"port {port} is not provably held by pid {pid}: another process has a socket on it"
    if create_time is None or current_create_time is None or current_create_time != create_time:
        return f"pid {pid} is not the process expected (its OS start time does not match)"
    return None


def prove_process_owns_port(
    facts: ProcessFacts, port: int, pid: int, create_time: float | None, root: Path
) -> str | None:
    """`prove_socket_owner` for process `pid` expected to have started at `create_time`, whose
    sockets must belong to the owner of daemon root `root`; reads the OS facts itself."""
    import psutil

    try:
        current = facts.process(pid).create_time()
    except psutil.Error:
        return f"pid {pid} cannot be opened to read its start time"
    return prove_socket_owner(
        facts,
        port,
        uid=owner_uid(root),
        pid=pid,
        create_time=create_time,
        current_create_time=current,
    )


def _listen_rows(port: int) -> list[tuple[int, str]] | None:
    """(uid, inode) of every IPv4 and IPv6 LISTEN socket on `port`; None if the OS cannot tell.

    sock_diag first (the kernel's listening hash only); /proc/net/tcp{,6} where it cannot answer.
    """
    found = all_listeners()
    if found is not None:
        return [(s.uid, s.inode) for s in found if s.port == port]
    return _proc_listen_rows(port)


def _proc_listen_rows(port: int) -> list[tuple[int, str]] | None:
    """(uid, inode) of every LISTEN row for `port` in /proc/net/tcp{,6}; None if unreadable."""
    rows: list[tuple[int, str]] = []
    readable = False
    # A busy machine has thousands of rows (TIME_WAIT and all): a row whose text never shows
    # the port as ":PPPP " (the local or remote address) is skipped before it is split.
    needle = f":{port:04X} "
    for table in _TABLES:
        try:
            with open(table, encoding="ascii", errors="replace") as fh:
                readable = True
                fh.readline()  # header
                for count, line in enumerate(fh):
                    if count >= _MAX_ROWS:
                        break
                    if needle not in line:
                        continue
                    # "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ..."
                    fields = line.split(None, 10)
                    if len(fields) < 10 or fields[3] != _LISTEN:
                        continue
                    _, _, port_hex = fields[1].rpartition(":")
                    try:
                        if int(port_hex, 16) == port:
                            rows.append((int(fields[7]), fields[9]))
                    except ValueError:
                        continue
        except OSError:
            continue
    return rows if readable else None


def _open_inodes(pid: int) -> set[str] | None:
    """Socket inodes among the open fds of /proc/<pid>; None if they cannot be read."""
    found: set[str] = set()
    try:
        fds = os.scandir(f"/proc/{pid}/fd")
    except OSError:
        return None  # gone, or another user's process we may not look into
    with fds:
        for fd in fds:
            try:
                link = os.readlink(fd.path)
            except OSError:
                continue
            if link.startswith("socket:["):
                found.add(link[8:-1])
    return found


def linux_listening_sockets(port: int, pid: int | None) -> list[ListeningSocket] | None:
    """`SocketFacts.listening_sockets` from /proc (Linux); None where /proc cannot tell."""
    rows = _listen_rows(port)
    if rows is None:
        return None
    held = _open_inodes(pid) if pid is not None and rows else None
    return [ListeningSocket(uid, held is not None and inode in held) for uid, inode in rows]
