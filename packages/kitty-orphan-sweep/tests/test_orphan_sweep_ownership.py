"""Socket ownership proof (ADR 0004): each leg can fail the proof on its own."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psutil
import pytest

from kitty_orphan_sweep import PsutilProcessTable, _ownership
from kitty_orphan_sweep._ownership import (
    ListeningSocket,
    owner_uid,
    prove_process_owns_port,
    prove_socket_owner,
)

ME = 1000


class Facts:
    def __init__(self, sockets: list[ListeningSocket] | None) -> None:
        self.sockets = sockets
        self.asked: list[tuple[int, int | None]] = []

    def listening_sockets(self, port: int, pid: int | None) -> list[ListeningSocket] | None:
        self.asked.append((port, pid))
        return self.sockets


def _prove(sockets: list[ListeningSocket] | None, **kw: object) -> str | None:
    args: dict[str, object] = {"uid": ME, "pid": 42, "create_time": 5.0, "current_create_time": 5.0}
    args.update(kw)
    return prove_socket_owner(Facts(sockets), 18300, **args)  # type: ignore[arg-type]


def test_proof_holds_only_when_every_leg_holds() -> None:
    assert _prove([ListeningSocket(ME, True)]) is None
    assert _prove([ListeningSocket(ME, True), ListeningSocket(ME, True)]) is None


@pytest.mark.parametrize(
    ("sockets", "kw", "needle"),
    [
        (None, {}, "cannot be read"),
        ([], {}, "nothing listens"),
        ([ListeningSocket(ME + 1, True)], {}, "belongs to uid 1001, not uid 1000"),
        ([ListeningSocket(None, True)], {}, "uid unknown"),
        ([ListeningSocket(ME, True), ListeningSocket(ME + 1, True)], {}, "uid 1001"),
        ([ListeningSocket(ME, False)], {}, "not provably held by pid 42"),
        ([ListeningSocket(ME, True), ListeningSocket(ME, False)], {}, "not provably held"),
        ([ListeningSocket(ME, True)], {"current_create_time": 5.001}, "start time"),
        ([ListeningSocket(ME, True)], {"current_create_time": None}, "start time"),
        ([ListeningSocket(ME, True)], {"create_time": None}, "start time"),
        ([ListeningSocket(ME, True)], {"uid": None}, "owner of the daemon root is unknown"),
    ],
)
def test_each_missing_leg_is_a_plain_reason(
    sockets: list[ListeningSocket] | None, kw: dict[str, object], needle: str
) -> None:
    problem = _prove(sockets, **kw)
    assert problem is not None
    assert needle in problem


def test_without_a_pid_only_the_uid_is_proven() -> None:
    facts = Facts([ListeningSocket(ME, False)])
    assert prove_socket_owner(facts, 18300, uid=ME) is None
    assert facts.asked == [(18300, None)]
    assert prove_socket_owner(Facts([ListeningSocket(ME + 1, False)]), 18300, uid=ME) is not None
    assert prove_socket_owner(Facts(None), 18300, uid=ME) is not None


def test_owner_uid_is_the_roots_owner(tmp_path: Path) -> None:
    assert owner_uid(tmp_path) == os.stat(tmp_path).st_uid
    assert owner_uid(tmp_path / "absent") is None


def test_rows_come_from_both_tables_and_only_listeners_of_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
    tail = " 00:00000000 00000000  {uid}        0 {inode} 1 0000000000000000 100 0 0 10 0\n"

    def row(local: str, state: str, uid: int, inode: int) -> str:
        return f"   0: {local} 00000000:0000 {state} 00000000:00000000" + tail.format(
            uid=uid, inode=inode
        )

    tcp = tmp_path / "tcp"
    tcp.write_text(
        header
        + row("0100007F:4FB2", "0A", 1000, 11)
        + row("0100007F:4FB2", "01", 2000, 12)  # a connected socket, not a listener
        + row("0100007F:4FB3", "0A", 3000, 13)
        + row("0100007F:ZZZZ", "0A", 4000, 14)
        + "   4: short line\n"
    )
    tcp6 = tmp_path / "tcp6"
    tcp6.write_text(header + row("0" * 32 + ":4FB2", "0A", 5000, 15))
    monkeypatch.setattr(_ownership, "all_listeners", lambda: None)  # no sock_diag: /proc
    monkeypatch.setattr(_ownership, "_TABLES", (str(tcp), str(tcp6)))
    assert _ownership._listen_rows(0x4FB2) == [(1000, "11"), (5000, "15")]
    assert _ownership._listen_rows(0x4FB3) == [(3000, "13")]
    assert _ownership._listen_rows(1) == []
    monkeypatch.setattr(_ownership, "_TABLES", (str(tmp_path / "absent"),))
    assert _ownership._listen_rows(0x4FB2) is None
    assert _ownership.linux_listening_sockets(0x4FB2, 1) is None


def test_sock_diag_answers_for_both_address_families_without_reading_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's listening hash (sock_diag) gives the same uid and inode as /proc/net/tcp{,6},
    IPv6 included, so /proc's whole-table walk (~4 ms a file) is not read at all."""
    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        v4.listen()
        port = v4.getsockname()[1]
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.bind(("::1", port))
        v6.listen()
        from_proc = _ownership._proc_listen_rows(port)
        assert from_proc is not None
        assert len(from_proc) == 2
        assert {uid for uid, _ in from_proc} == {os.getuid()}
        monkeypatch.setattr(_ownership, "_TABLES", (str(tmp_path / "absent"),))
        assert sorted(_ownership._listen_rows(port) or []) == sorted(from_proc)


def test_one_family_sock_diag_cannot_answer_falls_back_to_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _only_table(tmp_path, monkeypatch, _HEADER + _listener_row(41))
    from kitty_orphan_sweep import _sockdiag

    real = _sockdiag.listeners
    monkeypatch.setattr(_sockdiag, "listeners", lambda f: None if f == socket.AF_INET6 else real(f))
    assert _ownership._listen_rows(0x4FB2) == [(1000, "41")]


def test_a_real_listener_is_proven_ours_and_only_ours() -> None:
    table = PsutilProcessTable()
    me = os.getpid()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        mine = table.listening_sockets(port, me)
        if mine is None:
            pytest.skip("no /proc/net socket table on this platform")
        assert mine == [ListeningSocket(os.getuid(), True)]
        # pid 1 does not hold our socket
        assert table.listening_sockets(port, 1) == [ListeningSocket(os.getuid(), False)]
        created = psutil.Process(me).create_time()
        assert (
            prove_socket_owner(
                table,
                port,
                uid=os.getuid(),
                pid=me,
                create_time=created,
                current_create_time=created,
            )
            is None
        )
    assert table.listening_sockets(port, me) == []


class Started:
    def __init__(self, created: float) -> None:
        self.created = created

    def create_time(self) -> float:
        return self.created


class ProcFacts(Facts):
    def __init__(self, sockets: list[ListeningSocket] | None, created: float | None) -> None:
        super().__init__(sockets)
        self.created = created

    def process(self, pid: int) -> Started:
        if self.created is None:
            raise psutil.NoSuchProcess(pid)
        return Started(self.created)


def test_process_proof_reads_the_start_time_and_the_roots_owner(tmp_path: Path) -> None:
    mine = os.stat(tmp_path).st_uid
    held = [ListeningSocket(mine, True)]
    assert prove_process_owns_port(ProcFacts(held, 5.0), 18300, 42, 5.0, tmp_path) is None
    recycled = prove_process_owns_port(ProcFacts(held, 6.0), 18300, 42, 5.0, tmp_path)
    assert recycled is not None
    assert "start time" in recycled
    gone = prove_process_owns_port(ProcFacts(held, None), 18300, 42, 5.0, tmp_path)
    assert gone is not None
    assert "cannot be opened" in gone
    stranger = [ListeningSocket(mine + 1, True)]
    assert prove_process_owns_port(ProcFacts(stranger, 5.0), 18300, 42, 5.0, tmp_path) is not None
    nowhere = prove_process_owns_port(ProcFacts(held, 5.0), 18300, 42, 5.0, tmp_path / "absent")
    assert nowhere is not None
    assert "owner of the daemon root is unknown" in nowhere


_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def _listener_row(inode: int, extra: str = " 1 0000000000000000 100 0 0 10 0") -> str:
    return (
        f"   0: 0100007F:4FB2 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
        f"  1000        0 {inode}{extra}\n"
    )


def _only_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    """Make a /proc/net/tcp-shaped file of `text` the only socket table _ownership reads."""
    tcp = tmp_path / "tcp"
    tcp.write_text(text)
    monkeypatch.setattr(_ownership, "_TABLES", (str(tcp),))


def test_each_table_is_read_up_to_its_row_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table longer than the bound is read up to it, and not one row further."""
    _only_table(tmp_path, monkeypatch, _HEADER + "".join(_listener_row(i) for i in (21, 22, 23)))
    monkeypatch.setattr(_ownership, "_MAX_ROWS", 2)
    monkeypatch.setattr(_ownership, "all_listeners", lambda: None)
    assert _ownership._listen_rows(0x4FB2) == [(1000, "21"), (1000, "22")]


def test_a_row_that_ends_at_its_inode_still_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten fields (sl .. inode) are all a row needs; one fewer is not a row."""
    _only_table(
        tmp_path,
        monkeypatch,
        _HEADER + _listener_row(31, extra="") + _listener_row(32, extra="")[:-4] + "\n",
    )
    monkeypatch.setattr(_ownership, "all_listeners", lambda: None)
    assert _ownership._listen_rows(0x4FB2) == [(1000, "31")]


def test_only_socket_descriptors_count_as_socket_inodes() -> None:
    """A pipe's descriptor (`pipe:[N]`) is not a socket, however its link text is cut."""
    read_end, write_end = os.pipe()
    sock = socket.socket()
    try:
        link = os.readlink(f"/proc/self/fd/{read_end}")
        assert link.startswith("pipe:[")
        found = _ownership._open_inodes(os.getpid())
        assert found is not None
        assert str(os.fstat(sock.fileno()).st_ino) in found
        assert link[8:-1] not in found
        assert str(os.fstat(read_end).st_ino) not in found
    finally:
        sock.close()
        os.close(read_end)
        os.close(write_end)


def test_the_remote_address_never_counts_as_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A LISTEN row's remote address is 00000000:0000: the ":0000 " the line filter looks for
    # when asked about port 0 is there, but only the local address names the row's port.
    _only_table(tmp_path, monkeypatch, _HEADER + _listener_row(41))
    assert _ownership._proc_listen_rows(0) == []
    assert _ownership._proc_listen_rows(0x4FB2) == [(1000, "41")]
