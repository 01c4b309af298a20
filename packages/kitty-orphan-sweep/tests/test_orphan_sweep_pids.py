"""Listener PID resolution (SWP-04) and per-PID facts through the process-table seam."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from collections.abc import Collection

import psutil
import pytest

from _orphan_sweep_helpers import PORT_BASE
from kitty_daemon_identity import ArgvError, PidError
from kitty_orphan_sweep import PsutilProcessTable
from kitty_orphan_sweep._proctable import ProcessHandle, handle_gone
from kitty_orphan_sweep._scan import process_facts, resolve_pids


class FakeTable(PsutilProcessTable):
    """Socket-table answers chosen by the test; process() still opens real processes."""

    def __init__(
        self,
        listening: dict[int, set[int | None]] | Exception,
        *,
        own: dict[int, set[int]] | None = None,
        lsof: dict[int, list[int] | None] | None = None,
    ) -> None:
        self.listening = listening
        self.own = own or {}
        self.lsof = lsof or {}
        self.lsof_calls: list[int] = []

    def listening_pids(
        self, ports: Collection[int] | None = None, hint_pids: Collection[int] = ()
    ) -> dict[int, set[int | None]]:
        if isinstance(self.listening, Exception):
            raise self.listening
        return self.listening

    def pid_listens_on(self, pid: int, port: int) -> bool:
        if pid == 999_999:
            raise psutil.AccessDenied(pid)
        return port in self.own.get(pid, set())

    def lsof_pids(self, port: int, timeout: float) -> list[int] | None:
        self.lsof_calls.append(port)
        return self.lsof.get(port)


def test_single_owner_from_the_socket_table() -> None:
    out = resolve_pids([1, 2], {}, FakeTable({1: {42}}))
    assert (out[1].pid, out[1].source) == (42, "net_connections")
    assert (out[2].pid, out[2].error) == (None, PidError.NOT_FOUND)


def test_shared_socket_names_only_the_self_reported_owner() -> None:
    table = FakeTable({1: {42, 43}, 2: {42, 43}})
    out = resolve_pids([1, 2], {1: 43, 2: 7}, table)
    assert out[1].pid == 43
    assert (out[2].pid, out[2].error) == (None, PidError.LOOKUP_FAILED)


def test_hidden_owner_uses_the_claimed_pid_only_if_it_really_listens() -> None:
    table = FakeTable({1: {None}, 2: {None}, 3: {None}}, own={42: {1}})
    out = resolve_pids([1, 2, 3], {1: 42, 2: 42, 3: 999_999}, table)
    assert (out[1].pid, out[1].source) == (42, "claimed")
    assert (out[2].pid, out[2].error) == (None, PidError.ACCESS_DENIED)
    assert (out[3].pid, out[3].error) == (None, PidError.ACCESS_DENIED)
    assert table.lsof_calls == []  # lsof only when the whole table is denied (macOS)


def test_macos_fallbacks_claimed_then_lsof() -> None:
    table = FakeTable(
        psutil.AccessDenied(),
        own={42: {1}},
        lsof={2: [77], 3: [77, 78], 4: None},
    )
    out = resolve_pids([1, 2, 3, 4, 5], {1: 42, 5: 999_999}, table)
    assert (out[1].pid, out[1].source) == (42, "claimed")
    assert (out[2].pid, out[2].source) == (77, "lsof")
    assert (out[3].pid, out[3].error) == (None, PidError.LOOKUP_FAILED)
    assert (out[4].pid, out[4].error) == (None, PidError.ACCESS_DENIED)
    assert (out[5].pid, out[5].error) == (None, PidError.ACCESS_DENIED)
    assert sorted(table.lsof_calls) == [2, 3, 4, 5]


def test_socket_table_failure_is_lookup_failed_never_a_guess() -> None:
    out = resolve_pids([1], {1: 42}, FakeTable(OSError("boom")))
    assert (out[1].pid, out[1].error) == (None, PidError.LOOKUP_FAILED)
    assert resolve_pids([], {}, FakeTable(OSError("never called"))) == {}


class Opener(PsutilProcessTable):
    def __init__(self, error: Exception | None = None, **methods: object) -> None:
        self.error = error
        self.methods = methods

    def process(self, pid: int) -> ProcessHandle:
        if self.error is not None:
            raise self.error
        real = psutil.Process(pid)
        methods = self.methods

        class H:
            @property
            def pid(self) -> int:
                return real.pid

            def __getattr__(self, name: str) -> object:
                if name in methods:
                    value = methods[name]
                    if isinstance(value, Exception):

                        def raiser() -> object:
                            raise value

                        return raiser
                    return lambda: value
                return getattr(real, name)

        return H()  # type: ignore[return-value]  # duck-typed handle via __getattr__


def test_process_facts_of_a_live_process() -> None:
    facts = process_facts(os.getpid(), PsutilProcessTable())
    assert facts.argv is not None
    assert facts.argv_error is None
    assert facts.create_time == psutil.Process().create_time()
    assert facts.exe


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (Opener(psutil.AccessDenied()), ArgvError.ACCESS_DENIED),
        (Opener(psutil.NoSuchProcess(1)), ArgvError.GONE),
        (Opener(cmdline=psutil.ZombieProcess(1)), ArgvError.ZOMBIE),
        (Opener(cmdline=psutil.NoSuchProcess(1)), ArgvError.GONE),
        (Opener(cmdline=psutil.AccessDenied()), ArgvError.ACCESS_DENIED),
        (Opener(cmdline=[], status=psutil.STATUS_ZOMBIE), ArgvError.ZOMBIE),
        (Opener(cmdline=[], status=psutil.AccessDenied()), ArgvError.GONE),
    ],
)
def test_process_errors_map_to_argv_errors_never_to_facts(
    table: Opener, expected: ArgvError
) -> None:
    facts = process_facts(os.getpid(), table)
    assert (facts.argv, facts.argv_error) == (None, expected)


def test_unreadable_create_time_and_exe_are_unknown() -> None:
    table = Opener(create_time=psutil.AccessDenied(), exe=psutil.AccessDenied())
    facts = process_facts(os.getpid(), table)
    assert (facts.create_time, facts.exe) == (None, None)
    assert facts.argv is not None


def test_real_table_sees_a_listener_and_its_own_socket() -> None:
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", PORT_BASE + 190))
        sock.listen(1)
        table = PsutilProcessTable()
        assert os.getpid() in table.listening_pids()[PORT_BASE + 190]
        assert table.pid_listens_on(os.getpid(), PORT_BASE + 190)
        assert not table.pid_listens_on(os.getpid(), PORT_BASE + 191)
        assert os.getpid() in table.protected_pids()
    finally:
        sock.close()


def test_lsof_fallback_parses_pids_or_reports_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    table = PsutilProcessTable()
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", PORT_BASE + 191))
        sock.listen(1)
        found = table.lsof_pids(PORT_BASE + 191, 5.0)
        if found is not None:  # lsof may be missing on a minimal box; the None path is below
            assert found == [os.getpid()]
    finally:
        sock.close()
    monkeypatch.setattr("shutil.which", lambda _: None)
    assert table.lsof_pids(PORT_BASE + 191, 1.0) is None
    monkeypatch.setattr("shutil.which", lambda _: "/bin/sleep")

    def slow(*a: object, **k: object) -> object:
        raise subprocess.TimeoutExpired("lsof", 0.1)

    monkeypatch.setattr("subprocess.run", slow)
    assert table.lsof_pids(PORT_BASE + 191, 0.1) is None


def test_handle_gone_treats_errors_conservatively() -> None:
    class Gone:
        pid = 1

        def is_running(self) -> bool:
            raise psutil.NoSuchProcess(1)

    class Denied:
        pid = 1

        def is_running(self) -> bool:
            raise psutil.AccessDenied(1)

    assert handle_gone(Gone())  # type: ignore[arg-type]  # minimal stub
    assert not handle_gone(Denied())  # type: ignore[arg-type]  # minimal stub
    assert not handle_gone(psutil.Process())


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1)
    return sock


def _psutil_view(ports: set[int]) -> dict[int, set[int | None]]:
    out: dict[int, set[int | None]] = {}
    for c in psutil.net_connections("tcp4"):
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports:
            out.setdefault(c.laddr.port, set()).add(c.pid)
    return out


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="Linux /proc fast path only")
def test_every_socket_table_path_agrees_with_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    from kitty_orphan_sweep import _proctable

    socks = [_listen(PORT_BASE + 192), _listen(PORT_BASE + 193)]
    try:
        ports = {PORT_BASE + 192, PORT_BASE + 193, PORT_BASE + 194}
        expected = _psutil_view(ports)
        assert expected == {PORT_BASE + 192: {os.getpid()}, PORT_BASE + 193: {os.getpid()}}
        table = PsutilProcessTable()
        assert table.listening_pids(ports) == expected  # netlink sock_diag
        assert table.listening_pids(ports, hint_pids=[os.getpid()]) == expected  # hinted owner
        assert table.listening_pids(ports, hint_pids=[1]) == expected  # wrong hint → full walk
        monkeypatch.setattr(_proctable, "listening_inodes", lambda: None)
        assert table.listening_pids(ports) == expected  # /proc/net/tcp parse
        assert _proctable._linux_listening_pids(ports, path="/nonexistent") is None
        monkeypatch.setattr(_proctable, "_PROC_NET_TCP", "/nonexistent")
        assert table.listening_pids(ports) == expected  # plain psutil
        whole = table.listening_pids()
        assert whole[PORT_BASE + 192] == {os.getpid()}
    finally:
        for s in socks:
            s.close()


def test_sock_diag_failures_fall_back_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    from kitty_orphan_sweep import _sockdiag

    class Broken:
        def __init__(self, *a: object) -> None:
            raise OSError("no netlink here")

    monkeypatch.setattr(socket, "socket", Broken)
    assert _sockdiag.listening_inodes() is None


@pytest.mark.parametrize(
    "chunks",
    [
        [b""],  # socket closed mid-dump
        [struct.pack("=IHHII", 8, 1, 0, 0, 0)],  # length shorter than a header
        [struct.pack("=IHHII", 20, 2, 0, 0, 0) + b"\0" * 4],  # NLMSG_ERROR
    ],
)
def test_sock_diag_rejects_malformed_replies(chunks: list[bytes]) -> None:
    from kitty_orphan_sweep import _sockdiag

    class Replay:
        def __init__(self) -> None:
            self.chunks = list(chunks)

        def recv(self, n: int) -> bytes:
            return self.chunks.pop(0)

    assert _sockdiag._collect(Replay()) is None  # type: ignore[arg-type]  # recv-only stub
