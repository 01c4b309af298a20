"""Who owns the sockets listening on a port, by uid (Linux ``/proc/net``), for pid-less targets.

A forced `missing_pid` record is a listener whose process we cannot see; all we have is its
self-report, which anyone on the machine can forge. Before the scope key (a secret) goes to such
a listener we at least check that every socket listening on that port belongs to us: on Linux a
hidden owner usually means another user's process. The kernel's socket table shows the uid even
when the owning process is invisible.
"""

from __future__ import annotations

from typing import Final

_TABLES: Final = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN: Final = "0A"
_MAX_LINES: Final = 1_000_000  # bound on the read loop


def listening_uids(port: int) -> frozenset[int] | None:
    """UIDs of every LISTEN socket on `port` (IPv4 and IPv6), or None where the OS cannot tell.

    An empty set means the tables were readable but nobody listens on the port there (gone, or
    bound in a way we cannot attribute): callers must treat that as "owner unproven".
    """
    uids: set[int] = set()
    readable = False
    for table in _TABLES:
        try:
            with open(table, encoding="ascii", errors="replace") as fh:
                readable = True
                for count, line in enumerate(fh):
                    if count >= _MAX_LINES:
                        break
                    uid = _listener_uid(line, port)
                    if uid is not None:
                        uids.add(uid)
        except OSError:
            continue
    return frozenset(uids) if readable else None


def _listener_uid(line: str, port: int) -> int | None:
    # "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ..."
    fields = line.split()
    if len(fields) < 8 or fields[3] != _LISTEN:
        return None
    _, _, port_hex = fields[1].rpartition(":")
    try:
        if int(port_hex, 16) != port:
            return None
        return int(fields[7])
    except ValueError:
        return None
