"""Linux fast path for "which TCP sockets listen, on which port, owned by which uid" (sock_diag).

Reading /proc/net/tcp{,6} makes the kernel walk and render its whole connection hash: ~4 ms per
file even when it holds nothing, tens of ms with a few thousand TIME_WAIT sockets (a host or a
test run). Asking netlink sock_diag for LISTEN sockets only lets the kernel walk just its
listening hash (~0.1 ms). It reports the same sockets and uids as /proc (same network
namespace, same user-namespace mapping). Any failure returns None and the caller falls back to
/proc, then to psutil.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Final

from kitty_filelock import frozen_dataclass

_NETLINK_SOCK_DIAG: Final = 4
_SOCK_DIAG_BY_FAMILY: Final = 20
_NLM_F_REQUEST: Final = 0x1
_NLM_F_DUMP: Final = 0x300
_NLMSG_ERROR: Final = 2
_NLMSG_DONE: Final = 3
_TCP_LISTEN: Final = 10
_NLMSG_HDR: Final = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed 48-byte inet_diag_sockid.
_REQ: Final = struct.Struct("=BBBxI48x")
# inet_diag_msg: family, state, timer, retrans, sockid(sport!H dport!H src 16 dst 16 if 4 cookie 8),
# expires, rqueue, wqueue, uid, inode.
_MSG: Final = struct.Struct("=BBBB2s2s16s16sI8sIIIII")
_MAX_MESSAGES: Final = 1_000_000  # bound on the receive loop


@frozen_dataclass
class Listener:
    """One LISTEN socket as the kernel reports it (not a NamedTuple: that compiles code at
    import, a cost the doctor's default path does not pay)."""

    port: int
    uid: int
    inode: str  # as /proc writes it, and as a descriptor's link names it: socket:[<inode>]


def listening_inodes() -> dict[str, int] | None:
    """LISTEN socket inode (as text) → local port for IPv4 TCP, or None if unavailable."""
    found = listeners(socket.AF_INET)
    return None if found is None else {s.inode: s.port for s in found}


def all_listeners() -> list[Listener] | None:
    """Every IPv4 and IPv6 TCP LISTEN socket; None unless both families answered (half an
    answer would read as "nobody listens" on the other)."""
    found: list[Listener] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        part = listeners(family)
        if part is None:
            return None
        found += part
    return found


def listening_ports() -> frozenset[int] | None:
    """The local ports some TCP socket listens on (any address, IPv4 or IPv6), or None."""
    found = all_listeners()
    return None if found is None else frozenset(s.port for s in found)


def listeners(family: int) -> list[Listener] | None:
    """Every TCP LISTEN socket of address `family` (AF_INET or AF_INET6), or None if unavailable."""
    if not hasattr(socket, "AF_NETLINK"):
        return None  # pragma: no cover - not Linux
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    except OSError:
        return None
    with sock:
        try:
            sock.settimeout(1.0)
            body = _REQ.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
            header = _NLMSG_HDR.pack(
                _NLMSG_HDR.size + len(body),
                _SOCK_DIAG_BY_FAMILY,
                _NLM_F_REQUEST | _NLM_F_DUMP,
                1,
                os.getpid(),
            )
            sock.sendall(header + body)
            return _collect(sock)
        except (OSError, struct.error):
            return None


def _collect(sock: socket.socket) -> list[Listener] | None:
    out: list[Listener] = []
    seen = 0
    while seen < _MAX_MESSAGES:
        data = sock.recv(65536)
        if not data:
            return None
        offset = 0
        while offset + _NLMSG_HDR.size <= len(data):
            length, kind, _, _, _ = _NLMSG_HDR.unpack_from(data, offset)
            if length < _NLMSG_HDR.size:
                return None
            if kind == _NLMSG_DONE:
                return out
            if kind == _NLMSG_ERROR:
                return None
            fields = _MSG.unpack_from(data, offset + _NLMSG_HDR.size)
            sport = struct.unpack("!H", fields[4])[0]
            out.append(Listener(sport, fields[13], str(fields[14])))
            seen += 1
            # Messages are 4-byte aligned (NLMSG_ALIGN).
            offset += (length + 3) & ~3
    return None
