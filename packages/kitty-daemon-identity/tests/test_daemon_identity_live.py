"""The reference daemon as a real subprocess: the behaviour every later live test relies on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from _didkit import HANG_CAP_S, Daemon, ProcSet, free_port, listener, request, shutdown
from kitty_daemon_identity import (
    DaemonFamily,
    StateRecord,
    marker_args,
    parse_markers,
    process_start_time,
    read_scope_key,
    scope_id,
    spawn_shaped,
    write_state,
)

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX signals")


def state_naming(root: Path, pid: int, port: int, started: float) -> None:
    write_state(
        root,
        StateRecord(
            family=DaemonFamily.SYNC,
            pid=pid,
            port=port,
            process_started_at=started,
            package_version="0.1.0",
            protocol_version=1,
            started_at="2025-05-01T10:00:01Z",
            instance_id="d" * 32,
            scope_id=scope_id(root),
        ),
    )


def start(procs: ProcSet, *args: str) -> Daemon:
    return procs.daemon("--port", str(free_port()), *args)


def test_starts_answers_and_stops_on_authenticated_shutdown(procs: ProcSet, root: Path) -> None:
    d = start(procs, *marker_args(root, sys.executable))
    health = request(d.port, "GET", "/api/health").json()
    assert health["pid"] == d.pid
    assert health["port"] == d.port
    assert health["daemon_root"] == str(root)
    assert health["process_started_at"] == pytest.approx(psutil.Process(d.pid).create_time(), abs=1)
    argv = psutil.Process(d.pid).cmdline()
    assert spawn_shaped(argv)
    assert parse_markers(argv).root == str(root)
    key = read_scope_key(root)
    assert key is not None
    assert shutdown(d.port, "not-the-key").status == 403
    assert shutdown(d.port, key).status == 202
    assert d.proc.wait(timeout=HANG_CAP_S) == 0
    assert key not in d.stderr_text()


def test_instance_token_from_environment(procs: ProcSet, root: Path) -> None:
    env = {**os.environ, "KITTY_DAEMON_TOKEN": "live-instance-token"}
    d = procs.daemon("--port", str(free_port()), "--root", str(root), env=env)
    assert "live-instance-token" not in request(d.port, "GET", "/api/health").body.decode()
    assert shutdown(d.port, "live-instance-token").status == 202
    assert d.proc.wait(timeout=HANG_CAP_S) == 0


def test_port_from_kitty_daemon_port(procs: ProcSet, root: Path) -> None:
    port = free_port()
    d = procs.daemon("--root", str(root), env={**os.environ, "KITTY_DAEMON_PORT": str(port)})
    assert d.port == port


@posix_only
def test_sigterm_exits_cleanly(procs: ProcSet, root: Path) -> None:
    d = start(procs, "--root", str(root))
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=HANG_CAP_S) == 0
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", d.port)) != 0  # nothing left listening


@posix_only
def test_ignore_sigterm_is_honoured(procs: ProcSet, root: Path) -> None:
    d = start(procs, "--root", str(root), "--ignore-sigterm")
    d.proc.send_signal(signal.SIGTERM)  # SIG_IGN: discarded when generated
    assert request(d.port, "GET", "/api/health").status == 200
    assert d.proc.poll() is None
    d.proc.kill()
    assert d.proc.wait(timeout=HANG_CAP_S) == -signal.SIGKILL


@posix_only
def test_ignore_shutdown_is_honoured(procs: ProcSet, root: Path) -> None:
    d = start(procs, "--root", str(root), "--ignore-shutdown")
    key = read_scope_key(root)
    assert shutdown(d.port, key).status == 202
    d.wait_err("ignored (--ignore-shutdown)")
    assert request(d.port, "GET", "/api/health").status == 200
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=HANG_CAP_S) == 0


@posix_only
@pytest.mark.parametrize("mode", ["accept", "backlog"])
def test_wedge_modes(procs: ProcSet, root: Path, mode: str) -> None:
    d = start(procs, "--root", str(root), "--wedge", mode)
    for _ in range(3):  # several clients: each connects, none is ever answered
        with socket.create_connection(("127.0.0.1", d.port), timeout=HANG_CAP_S) as conn:
            conn.sendall(f"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1:{d.port}\r\n\r\n".encode())
            conn.settimeout(0.3)
            with pytest.raises(TimeoutError):
                conn.recv(1)
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=HANG_CAP_S) == 0


def test_retires_when_a_live_recorded_daemon_supersedes_it(procs: ProcSet, root: Path) -> None:
    singleton = start(procs, "--root", str(root))
    started = process_start_time(singleton.pid)
    assert started is not None
    state_naming(root, singleton.pid, singleton.port, started)
    orphan = start(procs, "--root", str(root), "--tick", "0.2")
    assert orphan.proc.wait(timeout=HANG_CAP_S) == 0  # left on its own
    assert "retiring (superseded)" in orphan.stderr_text()
    assert request(singleton.port, "GET", "/api/health").status == 200  # the singleton stays
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", orphan.port)) != 0


@pytest.mark.parametrize("case", ["dead_pid", "reused_pid", "busy"])
def test_does_not_retire(procs: ProcSet, root: Path, case: str) -> None:
    sleeper = procs.sleeper()
    started = process_start_time(sleeper.pid)
    assert started is not None
    extra: list[str] = []
    if case == "dead_pid":
        assert sleeper.stdin is not None
        sleeper.stdin.close()
        sleeper.wait(timeout=HANG_CAP_S)
        state_naming(root, sleeper.pid, 20199, started)
    elif case == "reused_pid":  # the pid is alive but belongs to a process started later
        state_naming(root, sleeper.pid, 20199, started - 100.0)
    else:  # superseded by a live recorded process AND idle, but busy
        state_naming(root, sleeper.pid, 20199, started)
        extra = ["--busy", "--idle-limit", "0.01"]
    d = start(procs, "--root", str(root), "--tick", "0.2", "--log-level", "debug", *extra)
    reason = "busy" if case == "busy" else "active"
    d.wait_err(f"tick: keep ({reason})", count=4)  # several ticks have seen the record
    assert d.proc.poll() is None
    assert request(d.port, "GET", "/api/health").status == 200
    assert shutdown(d.port, read_scope_key(root)).status == 202
    assert d.proc.wait(timeout=HANG_CAP_S) == 0


def test_idle_retirement_of_a_non_singleton(procs: ProcSet, root: Path) -> None:
    d = start(procs, "--root", str(root), "--tick", "0.1", "--idle-limit", "0.2")
    assert d.proc.wait(timeout=HANG_CAP_S) == 0
    assert "retiring (idle_timeout)" in d.stderr_text()


def test_port_taken_exits_3(procs: ProcSet, root: Path) -> None:
    port = free_port()
    with listener(port):
        d = procs.daemon("--port", str(port), "--root", str(root), expect_ready=False)
        assert d.proc.wait(timeout=HANG_CAP_S) == 3
        assert f"port {port}" in d.stderr_text()


def test_bad_arguments_exit_2(procs: ProcSet, root: Path) -> None:
    d = procs.daemon("--wedge", "sideways", expect_ready=False)
    assert d.proc.wait(timeout=HANG_CAP_S) == 2
    assert "--wedge" in d.stderr_text()
    bad_env = procs.daemon(
        "--root", str(root), env={**os.environ, "KITTY_DAEMON_PORT": "x"}, expect_ready=False
    )
    assert bad_env.proc.wait(timeout=HANG_CAP_S) == 2
    assert "KITTY_DAEMON_PORT" in bad_env.stderr_text()


def test_console_script(procs: ProcSet) -> None:
    script = Path(sys.executable).with_name("kitty-daemon" + (".exe" if os.name == "nt" else ""))
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    out = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=HANG_CAP_S, check=False
    )
    assert out.returncode == 0
    for flag in ("--advertise-version", "--wedge", "--ignore-sigterm", "--ignore-shutdown",
                 "--busy", "--tick", "--idle-limit", "--retire-singleton-on-idle", "--port",
                 "--family", "--root"):  # fmt: skip
        assert flag in out.stdout
