"""The reference daemon's logic, in-process: option parsing, port choice, modes, exit codes."""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from _didkit import HANG_CAP_S, ProcSet, free_block, free_port, listener, request, shutdown
from kitty_daemon_identity import (
    DaemonFamily,
    StateRecord,
    __version__,
    process_start_time,
    read_scope_key,
    scope_id,
    write_state,
)
from kitty_daemon_identity.__main__ import ExitCode, UsageError, main, parse_options, run


class ReadyOut(io.StringIO):
    """stdout stand-in that signals when the LISTENING line is written."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, s: str) -> int:
        n = super().write(s)
        if "LISTENING" in self.getvalue():
            self.ready.set()
        return n

    @property
    def port(self) -> int:
        line = self.getvalue().strip()
        return int(line.split()[1].rsplit(":", 1)[1])


class InProcess:
    """``run(argv)`` on a thread; ``stop`` ends it like a signal would."""

    def __init__(self, argv: list[str]) -> None:
        self.out = ReadyOut()
        self.err = io.StringIO()
        self.stop = threading.Event()
        self.code: int | None = None

        def target() -> None:
            self.code = run(
                argv,
                out=self.out,
                err=self.err,
                stop=self.stop,
                hard_exit=False,
            )

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def wait_ready(self) -> int:
        while not self.out.ready.wait(0.05):  # bounded by the thread's own life
            if not self.thread.is_alive():
                raise AssertionError(f"daemon ended {self.code}: {self.err.getvalue()}")
        return self.out.port

    def finish(self) -> int | None:
        self.stop.set()
        self.thread.join(timeout=HANG_CAP_S)
        assert not self.thread.is_alive()
        return self.code


@pytest.fixture
def env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Process environment for the daemon under test: assignments land in os.environ."""

    class Env(dict[str, str]):
        def __setitem__(self, key: str, value: str) -> None:
            monkeypatch.setenv(key, value)
            super().__setitem__(key, value)

    e = Env()
    e["KITTY_HOME"] = str(home)
    return e


@pytest.fixture
def started() -> Iterator[list[InProcess]]:
    runs: list[InProcess] = []
    yield runs
    for r in runs:
        r.finish()


def start(runs: list[InProcess], argv: list[str], environ: dict[str, str]) -> InProcess:
    del environ  # already applied to os.environ by the env fixture
    r = InProcess(argv)
    runs.append(r)
    return r


# ---- options ----------------------------------------------------------------------------------


def test_defaults(home: Path, env: dict[str, str]) -> None:
    opts = parse_options([], env)
    assert opts.family is DaemonFamily.SYNC
    assert opts.port is None
    assert opts.root == (home / "daemon").resolve()
    assert opts.advertise_version == __version__
    assert opts.wedge is None
    assert opts.tick_s == 30.0
    assert opts.idle_limit_s == 900.0
    assert not opts.busy
    assert not opts.ignore_sigterm
    assert not opts.ignore_shutdown
    assert not opts.retire_singleton_on_idle


def test_all_flags(tmp_path: Path, env: dict[str, str]) -> None:
    opts = parse_options(
        [
            "--family=dashboard",
            "--port",
            "20150",
            "--root",
            str(tmp_path),
            "--advertise-version",
            "3.2.2",
            "--wedge",
            "backlog",
            "--ignore-sigterm",
            "--ignore-shutdown",
            "--busy",
            "--tick",
            "0.2",
            "--idle-limit",
            "5",
            "--retire-singleton-on-idle",
        ],
        env,
    )
    assert opts.family is DaemonFamily.DASHBOARD
    assert opts.port == 20150
    assert opts.root == tmp_path
    assert opts.advertise_version == "3.2.2"
    assert opts.wedge == "backlog"
    assert opts.ignore_sigterm
    assert opts.ignore_shutdown
    assert opts.busy
    assert opts.tick_s == 0.2
    assert opts.idle_limit_s == 5.0
    assert opts.retire_singleton_on_idle


def test_root_marker_wins_and_markers_are_not_options(tmp_path: Path, env: dict[str, str]) -> None:
    marker_root = tmp_path / "marker-root"
    opts = parse_options(
        [
            "--root",
            str(tmp_path / "flag-root"),
            f"--kitty-daemon-root={marker_root}",
            "--kitty-daemon-exec=/usr/bin/python3",
        ],
        env,
    )
    assert opts.root == marker_root


def test_port_from_environment(env: dict[str, str]) -> None:
    env["KITTY_DAEMON_PORT"] = "20111"
    assert parse_options([], env).port == 20111
    assert parse_options(["--port", "20112"], env).port == 20112


@pytest.mark.parametrize(
    ("argv", "environ", "match"),
    [
        (["--bogus"], {}, "unrecognized arguments"),
        (["--family", "other"], {}, "invalid choice"),
        (["--port", "0"], {}, "outside 1..65535"),
        (["--port", "x"], {}, "not a port"),
        (["--tick", "0"], {}, "> 0"),
        (["--tick", "nan"], {}, "> 0"),
        (["--idle-limit", "abc"], {}, "not a number"),
        (["--wedge", "sometimes"], {}, "invalid choice"),
        (["--advertise-version", "v" * 65], {}, "1..64"),
        ([], {"KITTY_DAEMON_PORT": "99999"}, "KITTY_DAEMON_PORT='99999' is invalid"),
        (["--kitty-daemon-root=/a", "--kitty-daemon-root=/b"], {}, "conflicting"),
        (["--kitty-daemon-root="], {}, "empty"),
        ([], {"KITTY_HOME": "relative"}, "KITTY_HOME"),
    ],
)
def test_usage_errors(
    argv: list[str], environ: dict[str, str], match: str, env: dict[str, str]
) -> None:
    for key, value in environ.items():
        env[key] = value
    with pytest.raises(UsageError, match=match):
        parse_options(argv, env)


def test_bad_arguments_exit_2_with_a_message(env: dict[str, str]) -> None:
    err = io.StringIO()
    assert run(["--port", "x"], out=io.StringIO(), err=err) == 2
    assert "kitty-daemon: error:" in err.getvalue()
    assert "--port" in err.getvalue()


def test_bad_range_override_exits_2(env: dict[str, str]) -> None:
    err = io.StringIO()
    env["KITTY_SYNC_PORTS"] = "9-3"
    assert run([], out=io.StringIO(), err=err) == 2
    assert "KITTY_SYNC_PORTS='9-3' is invalid" in err.getvalue()


# ---- serving ----------------------------------------------------------------------------------


def test_serves_health_and_stops_on_authenticated_shutdown(
    started: list[InProcess], env: dict[str, str], home: Path
) -> None:
    port = free_port()
    env["KITTY_DAEMON_TOKEN"] = "tok-123"
    d = start(started, ["--port", str(port), "--advertise-version", "3.2.2"], env)
    assert d.wait_ready() == port
    assert d.out.getvalue() == f"LISTENING 127.0.0.1:{port} pid={os.getpid()}\n"
    assert "KITTY_DAEMON_TOKEN" not in os.environ  # removed from the daemon's environment
    body = request(port, "GET", "/api/health").json()
    assert body["package_version"] == "3.2.2"  # --advertise-version changes health only
    root = (home / "daemon").resolve()
    assert body["daemon_root"] == str(root)
    assert read_scope_key(root) is not None  # the daemon ensured the scope key
    assert shutdown(port, "tok-123").status == 202
    d.thread.join(timeout=HANG_CAP_S)
    assert d.code == 0


def test_first_free_port_of_the_family_range(started: list[InProcess], env: dict[str, str]) -> None:
    lo, hi = free_block(3)
    blocker = listener(lo)
    try:
        env["KITTY_DASHBOARD_PORTS"] = f"{lo}-{hi}"
        d = start(started, ["--family", "dashboard"], env)
        assert d.wait_ready() == lo + 1
        assert request(lo + 1, "GET", "/api/health").json()["daemon_family"] == "dashboard"
        assert d.finish() == 0
    finally:
        blocker.close()


def test_taken_port_exits_3(env: dict[str, str]) -> None:
    port = free_port()
    blocker = listener(port)
    try:
        err = io.StringIO()
        code = run(["--port", str(port)], out=io.StringIO(), err=err)
        assert code == 3
        assert f"port {port}" in err.getvalue()
        err = io.StringIO()
        wedged = run(["--port", str(port), "--wedge", "accept"], out=io.StringIO(), err=err)
        assert wedged == 3
    finally:
        blocker.close()


def test_full_range_exits_3(env: dict[str, str]) -> None:
    port = free_port()
    blocker = listener(port)
    try:
        err = io.StringIO()
        env["KITTY_SYNC_PORTS"] = f"{port}-{port + 1}"
        assert run([], out=io.StringIO(), err=err) == 3
        assert f"no free port in the sync range {port}-{port + 1}" in err.getvalue()
    finally:
        blocker.close()


def test_unwritable_root_exits_1(tmp_path: Path, env: dict[str, str]) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    err = io.StringIO()
    code = run(["--root", str(blocked / "daemon")], out=io.StringIO(), err=err)
    assert code == ExitCode.ERROR
    assert "cannot start" in err.getvalue()


def test_ignore_shutdown_answers_202_and_keeps_running(
    started: list[InProcess], env: dict[str, str], home: Path
) -> None:
    d = start(started, ["--port", str(free_port()), "--ignore-shutdown"], env)
    port = d.wait_ready()
    key = read_scope_key((home / "daemon").resolve())
    assert shutdown(port, key).status == 202
    assert request(port, "GET", "/api/health").status == 200
    assert d.finish() == 0


@pytest.mark.parametrize("mode", ["accept", "backlog"])
def test_wedge_modes_connect_but_never_answer(
    started: list[InProcess], env: dict[str, str], mode: str
) -> None:
    d = start(started, ["--port", str(free_port()), "--wedge", mode], env)
    port = d.wait_ready()
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_CAP_S) as conn:
        conn.sendall(f"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(1)
    assert d.finish() == 0


def test_retires_when_superseded(
    started: list[InProcess], env: dict[str, str], home: Path, procs: ProcSet,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="kitty_daemon_identity")
    other = procs.sleeper()
    started_at = process_start_time(other.pid)
    assert started_at is not None
    root = (home / "daemon").resolve()
    write_state(
        root,
        StateRecord(
            family=DaemonFamily.SYNC,
            pid=other.pid,
            port=20199,
            process_started_at=started_at,
            package_version="0.1.0",
            protocol_version=1,
            started_at="2025-05-01T10:00:01Z",
            instance_id="c" * 32,
            scope_id=scope_id(root),
        ),
    )
    d = start(started, ["--port", str(free_port()), "--tick", "0.05"], env)
    d.wait_ready()
    d.thread.join(timeout=HANG_CAP_S)  # it stops on its own
    assert d.code == 0
    retiring = [r for r in caplog.records if "retiring" in r.getMessage()]
    assert [r.levelno for r in retiring] == [logging.INFO]  # exactly one INFO line, with reason
    assert "retiring (superseded)" in retiring[0].getMessage()


def test_main_configures_logging_and_returns_the_code(env: dict[str, str]) -> None:
    assert main(["--port", "nope"]) == 2


def test_exit_codes_are_stable() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "PORT_TAKEN": 3,
    }


def test_closed_stdout_does_not_stop_the_daemon(
    started: list[InProcess], env: dict[str, str]
) -> None:
    out = io.StringIO()
    out.close()  # the spawner went away: writing the ready line fails
    stop = threading.Event()
    codes: list[int] = []
    port = free_port()
    t = threading.Thread(
        target=lambda: codes.append(
            run(["--port", str(port)], out=out, err=io.StringIO(), stop=stop, hard_exit=False)
        ),
        daemon=True,
    )
    t.start()
    try:
        for _ in range(2000):  # bounded: until the server answers
            try:
                if request(port, "GET", "/api/health", timeout=1).status == 200:
                    break
            except OSError:
                threading.Event().wait(0.01)
        else:
            raise AssertionError("daemon never answered")
    finally:
        stop.set()
        t.join(timeout=HANG_CAP_S)
    assert codes == [0]


def test_version_flag_returns_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"], out=io.StringIO(), err=io.StringIO()) == 0
    assert f"kitty-daemon {__version__}" in capsys.readouterr().out
