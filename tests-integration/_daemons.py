"""Live-daemon harness for the daemon/doctor matrices (INT-01/02/03/06/08) and the demo.

Importable helpers (tests and demo.py):

* `Ranges` / `port_block(i)`: private sync+dashboard sub-ranges inside 20600-20999 (the block this
  suite owns; unit suites use 20100-20599); `occupants(ports)` names whatever holds a port, so a
  test fails fast with "port 9400 is held by pid 123 (python -m foo)" instead of flaking.
* `Procs`: every process a test starts, reaped in `close()` (SIGTERM, then SIGKILL, then wait);
  it also reaps daemons that `ensure_daemon` or a worker spawned, found by their root marker
  under the test's temp directory (they are not always our children).
* `start_daemon`, `start_counter`, `start_sleeper`, `start_busy_daemon`: real processes that
  print one `LISTENING 127.0.0.1:<port> pid=<pid>` (or `READY pid=<pid>`) line when ready;
  readiness is that line, never a sleep and never a probe of our own (a probe would show up in a
  counting listener's connection count).

Run as a script this module is the body of those helper processes:

* `count`: a listener that appends `connect <client port>` for every accepted connection and
  `signal <n>` for every catchable signal to an events file (`Running.settle()` is the barrier
  to call before reading them); `--kitty FAMILY` makes it answer a valid, same-scope
  health payload (so it would be `safe_auto` if it sat inside the range), otherwise it answers
  like an unrelated web app (third-party).
* `sleeper`: an unrelated process that records signals (the PID-reuse victim).
* `busy-daemon`: a `DaemonServer` whose busy probe is "a file exists" and whose every retirement
  tick is appended to a file, so a test can watch it stay while busy and retire once idle.
* `ensure`: one `ensure_daemon` caller released by a file barrier (INT-06 convergence).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

HERE: Final = Path(__file__).resolve().parent
SELF: Final = Path(__file__).resolve()
#: The port block the daemon/doctor matrices own (unit suites use 20100-20599).
TEST_PORTS: Final = range(20600, 21000)
BLOCK_SIZE: Final = 10
LISTEN_TIMEOUT_S: Final = 20.0
BARRIER_POLL_S: Final = 0.01
BARRIER_TIMEOUT_S: Final = 30.0
REAP_TERM_S: Final = 3.0
REAP_KILL_S: Final = 5.0
#: Signals a counting listener / sleeper can observe (SIGKILL and SIGSTOP cannot be caught;
#: a SIGKILL shows up as the process being gone, a SIGSTOP as a `settle()` that never returns).
OBSERVED_SIGNALS: Final = (
    "SIGTERM",
    "SIGINT",
    "SIGHUP",
    "SIGQUIT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGCONT",
)
#: The barrier signal of `Running.settle()`. CPython runs pending Python-level handlers in
#: ascending signal number, so once the handler of this (higher-numbered on Linux) signal has
#: logged, every observed signal delivered before it has logged too. Harmless by default.
SENTINEL_SIGNAL: Final = "SIGWINCH"
SETTLE_TIMEOUT_S: Final = 20.0
PROXY_NAMES: Final = tuple(
    f"{n}_proxy" if lower else f"{n.upper()}_PROXY"
    for n in ("http", "https", "all", "no")
    for lower in (False, True)
)
_READY = re.compile(rb"^(?:LISTENING 127\.0\.0\.1:(\d+)|READY) pid=(\d+)\s*$")

#: Default-range boundary ports (INT-03): first, last, just below, just above.
SYNC_DEFAULT: Final = range(9400, 9450)
DASHBOARD_DEFAULT: Final = range(9237, 9337)


# -- port ranges ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ranges:
    """A private sync and dashboard range (half-open, like `PortRange`)."""

    sync: range
    dashboard: range

    def env(self) -> dict[str, str]:
        return {
            "KITTY_SYNC_PORTS": f"{self.sync.start}-{self.sync.stop}",
            "KITTY_DASHBOARD_PORTS": f"{self.dashboard.start}-{self.dashboard.stop}",
        }

    def all_ports(self) -> list[int]:
        return [*self.sync, *self.dashboard]


def port_block(index: int, size: int = BLOCK_SIZE) -> Ranges:
    """Sub-ranges number `index`: sync `[b, b+size)`, dashboard `[b+size, b+2*size)`."""
    base = TEST_PORTS.start + index * 2 * size
    if base + 2 * size > TEST_PORTS.stop or index < 0:
        raise ValueError(f"port block {index} (size {size}) falls outside {TEST_PORTS}")
    return Ranges(range(base, base + size), range(base + size, base + 2 * size))


def _bind_free(port: int) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR: a TIME_WAIT left by a previous test is not an occupant.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def describe_pid(pid: int | None) -> str:
    import psutil

    if pid is None:
        return "an unknown process (not visible to this user)"
    try:
        proc = psutil.Process(pid)
        cmd = " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return f"pid {pid}"
    return f"pid {pid} ({cmd[:160]})"


def listening_pids(ports: Iterable[int]) -> dict[int, int | None]:
    """Port → pid of the process listening on it (None when the socket table hides it)."""
    import psutil

    wanted = set(ports)
    found: dict[int, int | None] = {}
    with contextlib.suppress(psutil.AccessDenied):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in wanted:
                found[conn.laddr.port] = conn.pid
    return found


def occupants(ports: Iterable[int]) -> dict[int, str]:
    """Port → description of the foreign process that holds it; empty when every port is free."""
    ports = list(ports)
    busy = [p for p in ports if not _bind_free(p)]
    if not busy:
        return {}
    owners = listening_pids(busy)
    return {p: describe_pid(owners.get(p)) for p in busy}


def preflight_message(ports: Iterable[int], what: str) -> str | None:
    """None when every port is free, else a message naming each occupant and the fix."""
    held = occupants(ports)
    if not held:
        return None
    lines = [f"port {p} is held by {who}" for p, who in sorted(held.items())]
    return (
        f"{what}: {len(held)} port(s) are in use by processes this test did not start; "
        "stop them and re-run (this test must own these ports):\n  " + "\n  ".join(lines)
    )


# -- processes -----------------------------------------------------------------------------------
@dataclass(slots=True)
class Running:
    """A helper process that announced readiness."""

    proc: subprocess.Popen[bytes]
    pid: int
    port: int | None
    name: str
    stderr_path: Path
    events_path: Path | None = None
    #: Client ports of our own `settle()` connections (not counted as connections).
    sentinel_ports: set[int] = field(default_factory=set)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def events(self) -> list[str]:
        if self.events_path is None or not self.events_path.exists():
            return []
        return self.events_path.read_text().splitlines()

    def connections(self) -> int:
        """Connections accepted from anyone but `settle()` (call `settle()` first)."""
        return sum(
            1
            for e in self.events()
            if e.startswith("connect ") and int(e.split()[1]) not in self.sentinel_ports
        )

    def signals(self) -> list[str]:
        """Observed signals received so far (call `settle()` first)."""
        return [e for e in self.events() if e.startswith("signal ")]

    def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Barrier: every connection and signal sent to this helper before the call is logged.

        A count read right after a cleanup returns could miss a connection still in the accept
        queue or a signal whose handler has not run yet. So we send our own: a connection (the
        accept queue is FIFO, so once its client port is logged every earlier one is) and
        SENTINEL_SIGNAL (see there). Both are told apart from real events, so `connections()`
        and `signals()` afterwards are exact. A helper that died or was SIGSTOPped fails here.
        """
        assert self.events_path is not None, f"{self.name} logs no events"
        before = sum(1 for e in self.events() if e == "sentinel")
        if hasattr(signal, SENTINEL_SIGNAL):
            os.kill(self.pid, getattr(signal, SENTINEL_SIGNAL))
        port_logged = None
        if self.port is not None:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                client_port = int(sock.getsockname()[1])
            self.sentinel_ports.add(client_port)
            port_logged = f"connect {client_port}"

        def settled() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} (pid {self.pid}) died: {self.events()[-5:]}")
            events = self.events()
            signalled = not hasattr(signal, SENTINEL_SIGNAL) or (
                sum(1 for e in events if e == "sentinel") > before
            )
            return signalled and (port_logged is None or port_logged in events)

        wait_for(settled, timeout=timeout, what=f"{self.name} to log our sentinel events")

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment (with its KITTY_* overrides) plus `extra`; proxies removed."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_NAMES}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _wait_ready(proc: subprocess.Popen[bytes], name: str, stderr_path: Path) -> tuple[int, int]:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    deadline = time.monotonic() + LISTEN_TIMEOUT_S
    try:
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if not sel.select(timeout=remaining):
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    finally:
        sel.close()
    line = buf.split(b"\n", 1)[0]
    match = _READY.match(line)
    if match is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        err = stderr_path.read_text(errors="replace")[-2000:] if stderr_path.exists() else ""
        raise RuntimeError(
            f"{name} did not announce readiness (exit {proc.poll()}, stdout {buf[:200]!r}):\n{err}"
        )
    port = int(match.group(1)) if match.group(1) else 0
    return port, int(match.group(2))


@dataclass
class Procs:
    """Every process a test starts; `close()` reaps them all (and marker-rooted strays)."""

    workdir: Path
    started: list[Running] = field(default_factory=list)
    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: Helpers that only record catchable signals: SIGKILL straight away (SIGTERM is a no-op).
    deaf: set[int] = field(default_factory=set)
    _n: int = 0

    def _paths(self, name: str) -> tuple[Path, Path]:
        self._n += 1
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stem = f"{self._n:02d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        return logs / f"{stem}.stderr", logs / f"{stem}.events"

    def launch(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        events: bool = False,
        deaf: bool = False,
    ) -> Running:
        """Start `argv` and wait for its readiness line (bounded)."""
        stderr_path, events_path = self._paths(name)
        full = list(argv) + (["--events", str(events_path)] if events else [])
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=child_env(env),
                close_fds=True,
            )
        self.popens.append(proc)
        if deaf:
            self.deaf.add(proc.pid)
        port, pid = _wait_ready(proc, name, stderr_path)
        running = Running(
            proc, pid, port or None, name, stderr_path, events_path if events else None
        )
        self.started.append(running)
        return running

    def popen(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        stdout: Any = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start a process without a readiness line (workers); reaped like the others."""
        stderr_path, _ = self._paths(name)
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=err,
                env=child_env(env),
                close_fds=True,
            )
        self.popens.append(proc)
        return proc

    def close(self) -> list[str]:
        """Reap everything; returns descriptions of marker-rooted strays that had to be stopped."""
        for proc in self.popens:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    if proc.pid in self.deaf:
                        proc.kill()
                    else:
                        proc.terminate()
        deadline = time.monotonic() + REAP_TERM_S
        for proc in self.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in self.popens:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=REAP_KILL_S)
            if proc.stdout is not None:
                proc.stdout.close()
        return reap_marked(self.workdir)


def _is_gone(proc: Any) -> bool:
    import psutil

    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def stop_pids(procs: Sequence[Any]) -> None:
    """SIGTERM, bounded wait, SIGKILL, bounded wait, for psutil.Process objects (any parent).

    A zombie counts as gone (its parent, possibly init, reaps it); our own children are reaped
    by psutil's wait, which uses waitpid for them.
    """
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    for stage_s, escalate in ((REAP_TERM_S, True), (REAP_KILL_S, False)):
        deadline = time.monotonic() + stage_s
        pending = list(procs)
        while pending and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):
                psutil.wait_procs(pending, timeout=0.05)
            pending = [p for p in pending if not _is_gone(p)]
        if not pending:
            return
        if escalate:
            for proc in pending:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        procs = pending


def marked_processes(under: Path) -> list[Any]:
    """Live processes whose argv carries a kitty root marker pointing inside `under`."""
    import psutil

    prefix = "--kitty-daemon-root=" + str(under.resolve())
    me = os.getpid()
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == me:
            continue
        argv = proc.info.get("cmdline") or []
        if any(a.startswith(prefix) for a in argv) and not _is_gone(proc):
            out.append(proc)
    return out


@dataclass(frozen=True, slots=True)
class Leaks:
    """What a test session left behind (see `find_leaks`)."""

    processes: tuple[Any, ...]  # psutil.Process objects to stop
    descriptions: tuple[str, ...]


def find_leaks(under: Path, listeners_before: Mapping[int, int | None]) -> Leaks:
    """Our live descendants, daemons rooted under `under` (the session's temp dirs: a worker's
    `ensure_daemon` child is re-parented away from us when the worker exits), and listeners in
    TEST_PORTS that were not there before (`listeners_before`, from `listening_pids`)."""
    import psutil

    me = psutil.Process()
    children = [p for p in me.children(recursive=True) if p.is_running()]
    known = {p.pid for p in children}
    strays = [p for p in marked_processes(under) if p.pid not in known]
    new_listeners = {
        port: pid
        for port, pid in listening_pids(TEST_PORTS).items()
        if listeners_before.get(port, -1) != pid
    }
    descriptions = [
        *(f"child {describe_pid(p.pid)}" for p in children),
        *(f"daemon rooted in the session's temp dir: {describe_pid(p.pid)}" for p in strays),
        *(f"listener on port {port}: {describe_pid(pid)}" for port, pid in new_listeners.items()),
    ]
    return Leaks(tuple(children + strays), tuple(descriptions))


def reap_marked(under: Path) -> list[str]:
    """Stop every daemon rooted under `under` (spawned by ensure_daemon, a worker, the demo)."""
    strays = marked_processes(under)
    names = [describe_pid(p.pid) for p in strays]
    stop_pids(strays)
    return names


# -- starting helpers ----------------------------------------------------------------------------
def daemon_argv(
    home: Path | None,
    *,
    family: str = "sync",
    port: int | None = None,
    version: str | None = None,
    wedge: str | None = None,
    tick: float | None = None,
    busy: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """Reference-daemon argv; `home` None means no markers at all (a pre-marker daemon)."""
    from kitty_daemon_identity import daemon_root, marker_args

    argv = [sys.executable, "-m", "kitty_daemon_identity", "--family", family]
    if port is not None:
        argv += ["--port", str(port)]
    if version is not None:
        argv += ["--advertise-version", version]
    if wedge is not None:
        argv += ["--wedge", wedge]
    if tick is not None:
        argv += ["--tick", str(tick)]
    if busy:
        argv.append("--busy")
    argv += list(extra)
    if home is not None:
        argv += marker_args(daemon_root(home), sys.executable)
    return argv


def start_daemon(
    procs: Procs,
    home: Path,
    *,
    family: str = "sync",
    port: int,
    version: str | None = None,
    wedge: str | None = None,
    markers: bool = True,
    tick: float | None = None,
    busy: bool = False,
    extra: Sequence[str] = (),
    name: str | None = None,
) -> Running:
    """A reference daemon of `home`'s scope on `port` (markers appended like ensure_daemon)."""
    argv = daemon_argv(
        home if markers else None,
        family=family,
        port=port,
        version=version,
        wedge=wedge,
        tick=tick,
        busy=busy,
        extra=extra,
    )
    label = name or f"daemon-{family}-{port}-{version or 'cur'}{'-' + wedge if wedge else ''}"
    return procs.launch(argv, name=label, env={"KITTY_HOME": str(home)})


def start_counter(
    procs: Procs, port: int, *, kitty_home: Path | None = None, family: str = "sync"
) -> Running:
    """A counting listener; kitty-looking (same scope as `kitty_home`) or third-party."""
    argv = [sys.executable, str(SELF), "count", "--port", str(port)]
    env: dict[str, str] = {}
    if kitty_home is not None:
        from kitty_daemon_identity import daemon_root, marker_args

        argv += ["--kitty", family, *marker_args(daemon_root(kitty_home), sys.executable)]
        env["KITTY_HOME"] = str(kitty_home)
    kind = f"kitty-{family}" if kitty_home is not None else "third-party"
    return procs.launch(argv, name=f"counter-{kind}-{port}", env=env, events=True, deaf=True)


def start_sleeper(procs: Procs) -> Running:
    return procs.launch(
        [sys.executable, str(SELF), "sleeper"], name="sleeper", events=True, deaf=True
    )


def start_busy_daemon(
    procs: Procs, home: Path, *, port: int, busy_file: Path, ticks_file: Path, tick: float
) -> Running:
    from kitty_daemon_identity import daemon_root, marker_args

    argv = [
        sys.executable,
        str(SELF),
        "busy-daemon",
        "--port",
        str(port),
        "--busy-file",
        str(busy_file),
        "--ticks-file",
        str(ticks_file),
        "--tick",
        str(tick),
        *marker_args(daemon_root(home), sys.executable),
    ]
    return procs.launch(argv, name=f"busy-daemon-{port}", env={"KITTY_HOME": str(home)})


def write_state_for(
    home: Path, running: Running, *, family: str = "sync", package_version: str | None = None
) -> Any:
    """Record `running` (a reference daemon) as its family's singleton, like ensure_daemon does."""
    import uuid

    from kitty_daemon_identity import (
        DAEMON_PROTOCOL_VERSION,
        DaemonFamily,
        StateRecord,
        __version__,
        daemon_root,
        process_start_time,
        scope_id,
        write_state,
    )

    root = daemon_root(home)
    started = process_start_time(running.pid)
    assert started is not None, f"cannot read the start time of pid {running.pid}"
    assert running.port is not None
    record = StateRecord(
        family=DaemonFamily(family),
        pid=running.pid,
        port=running.port,
        process_started_at=started,
        package_version=package_version or __version__,
        protocol_version=DAEMON_PROTOCOL_VERSION,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        instance_id=uuid.uuid4().hex,
        scope_id=scope_id(root),
    )
    write_state(root, record)
    return record


def wait_for(predicate: Any, *, timeout: float, what: str, poll: float = 0.02) -> None:
    """Bounded polling for a condition another process brings about (a hang cap, not a timing)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def wait_exit(running: Running, timeout: float) -> int:
    try:
        return running.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{running.name} (pid {running.pid}) still running after {timeout:g} s"
        ) from None


def in_range_listeners(ports: Iterable[int]) -> dict[int, int | None]:
    """Listeners on `ports` by the kernel's socket table (no connection is made)."""
    return listening_pids(ports)


def run_doctor(
    *args: str, home: Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`kitty-doctor` as a real subprocess (stdin not a TTY, so it never prompts)."""
    full_env = child_env({"KITTY_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kitty_doctor", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


@dataclass
class Lab:
    """One test's world: its KITTY_HOME, its port sub-ranges and the processes it started."""

    home: Path
    ranges: Ranges
    procs: Procs
    workdir: Path

    @property
    def root(self) -> Path:
        from kitty_daemon_identity import daemon_root

        return daemon_root(self.home)

    def other_home(self, name: str) -> Path:
        """A second temp home (cross-home daemons); under workdir so teardown reaps its daemons."""
        home = self.workdir / name
        home.mkdir(mode=0o700, exist_ok=True)
        return home


@contextlib.contextmanager
def open_lab(
    workdir: Path,
    home: Path,
    ranges: Ranges | None,
    env: Any,
    *,
    preflight: Iterable[int] | None = None,
) -> Iterator[Lab]:
    """Point the environment (`env` is pytest's monkeypatch) at `home` and `ranges` (None: the
    default ranges, overrides removed), fail fast if a foreign process holds one of the ports
    (`preflight`, default every port of `ranges`), and reap everything on the way out."""
    ports = list(preflight) if preflight is not None else (ranges.all_ports() if ranges else [])
    message = preflight_message(ports, "pre-flight")
    if message is not None:
        raise PortsBusy(message)
    env.setenv("KITTY_HOME", str(home))
    if ranges is None:
        env.delenv("KITTY_SYNC_PORTS", raising=False)
        env.delenv("KITTY_DASHBOARD_PORTS", raising=False)
        ranges = Ranges(SYNC_DEFAULT, DASHBOARD_DEFAULT)
    else:
        for key, value in ranges.env().items():
            env.setenv(key, value)
    procs = Procs(workdir)
    try:
        yield Lab(home, ranges, procs, workdir)
    finally:
        procs.close()
        # Everything this test started is gone; a listener still in its ports is a leak.
        left = listening_pids([*ranges.sync, *ranges.dashboard, *ports])
        if left:
            raise AssertionError(
                "listeners left behind: "
                + ", ".join(f"port {p}: {describe_pid(pid)}" for p, pid in sorted(left.items()))
            )


class PortsBusy(AssertionError):
    """A port a test must own is held by a process the test did not start."""


# -- helper process bodies -----------------------------------------------------------------------
class _Events:
    """Append-only event log shared by the threads and signal handlers of a helper process."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # Re-entrant: signal handlers call add() on the main thread, possibly while that same
        # thread is inside add() for a connection; a plain Lock would deadlock the helper there.
        self._lock = threading.RLock()

    def add(self, line: str) -> None:
        with self._lock:
            os.write(self._fd, (line + "\n").encode())


def _record_signals(events: _Events) -> None:
    def on_signal(signum: int, frame: object) -> None:
        events.add(f"signal {signal.Signals(signum).name}")

    def on_sentinel(signum: int, frame: object) -> None:
        events.add("sentinel")

    for name in OBSERVED_SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, on_signal)
    sentinel = getattr(signal, SENTINEL_SIGNAL, None)
    if sentinel is not None:
        signal.signal(sentinel, on_sentinel)


def _health_body(family: str, port: int) -> bytes:
    """A valid DID-07 payload describing this very process (pid, port, start time, scope)."""
    import uuid

    from kitty_daemon_identity import (
        DAEMON_PROTOCOL_VERSION,
        HEALTH_SCHEMA_VERSION,
        __version__,
        daemon_root,
        default_home,
        parse_markers,
        process_start_time,
        scope_id,
    )

    marker_root = parse_markers(sys.argv).root
    root = Path(marker_root) if marker_root else daemon_root(default_home())
    started = process_start_time()
    payload = {
        "schema_version": HEALTH_SCHEMA_VERSION,
        "status": "ok",
        "daemon_family": family,
        "protocol_version": DAEMON_PROTOCOL_VERSION,
        "package_version": __version__,
        "singleton_scope_id": scope_id(root),
        "daemon_root": str(root),
        "pid": os.getpid(),
        "port": port,
        "process_started_at": started if started is not None else time.time(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "busy": False,
        "idle_s": 0.0,
        "instance_id": uuid.uuid4().hex,
    }
    return json.dumps(payload).encode()


def _serve_counting(args: argparse.Namespace) -> int:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    events = _Events(Path(args.events))
    _record_signals(events)
    port: int = args.port
    body = (
        _health_body(args.kitty, port)
        if args.kitty
        else b"<html><body>somebody else's web app</body></html>"
    )
    ctype = "application/json" if args.kitty else "text/html"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, format: str, *a: Any) -> None:
            return

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

        def process_request(self, request: Any, client_address: Any) -> None:
            # The client port lets `Running.settle()` recognise its own barrier connection.
            events.add(f"connect {client_address[1]}")
            super().process_request(request, client_address)

    server = Server(("127.0.0.1", port), Handler)
    sys.stdout.write(f"LISTENING 127.0.0.1:{port} pid={os.getpid()}\n")
    sys.stdout.flush()
    # Runs until SIGKILL (the reaper escalates): catchable signals are only recorded.
    server.serve_forever(poll_interval=0.1)
    return 0


def _sleep(args: argparse.Namespace) -> int:
    events = _Events(Path(args.events))
    _record_signals(events)
    sys.stdout.write(f"READY pid={os.getpid()}\n")
    sys.stdout.flush()
    deadline = time.monotonic() + 600  # bounded: a forgotten sleeper ends by itself
    while time.monotonic() < deadline:
        time.sleep(0.5)
    return 0


def _busy_daemon(args: argparse.Namespace) -> int:
    import logging

    from kitty_daemon_identity import DaemonServer, RetireDecision, __version__, parse_markers

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    busy_file = Path(args.busy_file)
    ticks = _Events(Path(args.ticks_file))
    root = parse_markers(sys.argv).root
    assert root, "busy-daemon needs a root marker"

    class Recording(DaemonServer):
        def tick(self) -> RetireDecision:
            decision = super().tick()
            ticks.add(f"{decision.reason.value} retire={decision.retire}")
            return decision

    server = Recording(
        "sync",
        args.port,
        Path(root),
        package_version=__version__,
        busy_probe=busy_file.exists,
        tick_s=args.tick,
    )
    sys.stdout.write(f"LISTENING 127.0.0.1:{server.port} pid={os.getpid()}\n")
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.close()
    # The tick thread is a daemon thread and may not get to log a retiring tick before the
    # interpreter exits; the decision itself is kept on the server.
    if server.retire_decision is not None:
        ticks.add(f"exit {server.retire_decision.reason.value}")
    return 0


def _hold_lock(args: argparse.Namespace) -> int:
    """Hold a MachineFileLock (like a refresh that hangs) until killed; bounded as a backstop."""
    from kitty_filelock import MachineFileLock

    lock = MachineFileLock(args.path, acquire_timeout=30, max_hold=10.0, label="refresh")
    lock.acquire()
    sys.stdout.write(f"READY pid={os.getpid()}\n")
    sys.stdout.flush()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(0.5)
    lock.release()
    return 0


def start_lock_holder(procs: Procs, lock_path: Path) -> Running:
    lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return procs.launch(
        [sys.executable, str(SELF), "hold-lock", "--path", str(lock_path)], name="lock-holder"
    )


def _ensure(args: argparse.Namespace) -> int:
    from kitty_orphan_sweep import ensure_daemon

    Path(args.ready).touch()
    go = Path(args.go)
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while not go.exists():
        if time.monotonic() > deadline:
            sys.stderr.write("barrier never opened\n")
            return 4
        time.sleep(BARRIER_POLL_S)
    handle = ensure_daemon(
        [sys.executable, "-m", "kitty_daemon_identity", "--family", args.family],
        family=args.family,
    )
    result = {
        "pid": handle.pid,
        "port": handle.port,
        "reused": handle.reused,
        "swept": [e.port for e in handle.reaped.swept],
    }
    Path(args.out).write_text(json.dumps(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="_daemons.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    count = sub.add_parser("count")
    count.add_argument("--port", type=int, required=True)
    count.add_argument("--kitty", choices=["sync", "dashboard"])
    count.add_argument("--events", required=True)
    sleeper = sub.add_parser("sleeper")
    sleeper.add_argument("--events", required=True)
    busy = sub.add_parser("busy-daemon")
    busy.add_argument("--port", type=int, required=True)
    busy.add_argument("--busy-file", required=True)
    busy.add_argument("--ticks-file", required=True)
    busy.add_argument("--tick", type=float, required=True)
    hold = sub.add_parser("hold-lock")
    hold.add_argument("--path", required=True)
    ensure = sub.add_parser("ensure")
    ensure.add_argument("--ready", required=True)
    ensure.add_argument("--go", required=True)
    ensure.add_argument("--out", required=True)
    ensure.add_argument("--family", default="sync")
    # Root/exec markers are evidence for scanners, not options.
    args, _markers = parser.parse_known_args(argv)
    handlers = {
        "count": _serve_counting,
        "sleeper": _sleep,
        "busy-daemon": _busy_daemon,
        "ensure": _ensure,
        "hold-lock": _hold_lock,
    }
    return handlers[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
