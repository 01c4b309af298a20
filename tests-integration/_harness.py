"""The process harness of the live-subprocess suite: every test, fixture module and the demo start,
wait for and reap their child processes through this module, and nothing else does.

* Children: `child_argv(family, ...)` is the argv of the one script helper processes run
  (`_child.py`); `spawn()` is the one place a child is started (the test's environment without
  proxies, stderr to a file, stdin closed unless asked); `child_env()` is that environment.
* Readiness: a child announces it is ready with its first stdout line; `first_line()` waits for
  it (bounded, through a reader thread because select() on a pipe does not work on Windows).
  Never a sleep, never a probe of our own (a probe would show up in a counting listener's count).
* `Procs`: every process a test starts, reaped in `close()` (SIGTERM, then SIGKILL, then wait),
  with daemons that `ensure_daemon` or a worker spawned, found by their root marker under the
  test's temp directory (they are not always our children). `reap()` is the same for one process.
* Waiting: `wait_for()` / `wait_for_file()` are bounded polls for a condition another process
  brings about: hang caps, never an ordering assumption.
* Ports: `Ranges` / `port_block(i)` are private sync+dashboard sub-ranges inside 20600-20999 (the
  block this suite owns; unit suites use 20100-20599); `occupants()` names whatever holds a port,
  so a test fails fast with "port 9400 is held by pid 123 (python -m foo)" instead of flaking.
* Leaks: `find_leaks()` lists the children, marker-rooted daemons and new listeners a session
  left behind (conftest fails the run on them).
* A second user: `as_user(uid)` + `second_user_python()` run a child as another uid (`setpriv`,
  needs root) with an interpreter that uid can read.
* Failure output: `log_tail()` / `mask_secrets()` quote a child's output without repeating a
  secret it may have leaked.

Only the standard library is imported at module level (psutil lazily): the children import this
module too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

HERE: Final = Path(__file__).resolve().parent
CHILD_SCRIPT: Final = HERE / "_child.py"
#: The port block the daemon/doctor matrices own (unit suites use 20100-20599).
TEST_PORTS: Final = range(20600, 21000)
BLOCK_SIZE: Final = 10
READY_TIMEOUT_S: Final = 20.0
BARRIER_POLL_S: Final = 0.01  # latency of a file barrier, not an ordering assumption
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
#: Loopback traffic must never go through a proxy, whatever the developer's shell exports.
PROXY_NAMES: Final = tuple(
    f"{n}_proxy" if lower else f"{n.upper()}_PROXY"
    for n in ("http", "https", "all", "no")
    for lower in (False, True)
)
#: The readiness line of the helpers in `_daemon_workers.py` (and of test-local scripts).
_READY = re.compile(rb"^(?:LISTENING 127\.0\.0\.1:(\d+)|READY) pid=(\d+)\s*$")
#: Where another uid finds an interpreter: root's own (pyenv, uv) may live under a 0700 /root.
SYSTEM_PYTHON: Final = "/usr/bin/python3"


# -- children ------------------------------------------------------------------------------------
def child_argv(family: str, *args: str) -> list[str]:
    """`python _child.py FAMILY ARGS...`: the argv of every helper process (see `_child.py`)."""
    return [sys.executable, str(CHILD_SCRIPT), family, *args]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment (with its KITTY_* overrides) plus `extra`; proxies removed, output
    unbuffered, and this directory importable (a child may import the helpers beside it)."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_NAMES}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra or {})
    return env


#: `spawn(stdout=STDERR)`: the child's stdout goes to the same file as its stderr.
STDERR: Final = subprocess.STDOUT


def spawn(
    argv: Sequence[str],
    *,
    stderr_path: Path,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stdin: int | None = subprocess.DEVNULL,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start one child: `child_env(env)`, stderr (and stdout with `stdout=STDERR`) to
    `stderr_path`, no inherited descriptors. The caller reaps it (`Procs` or `reap`)."""
    with open(stderr_path, "wb") as err:
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=err if stdout == STDERR else stdout,
            stderr=err,
            env=child_env(env),
            cwd=cwd,
            close_fds=True,
        )


def first_line(
    proc: subprocess.Popen[bytes], *, name: str, stderr_path: Path, timeout: float = READY_TIMEOUT_S
) -> bytes:
    """The child's first stdout line (its readiness announcement), waited for at most `timeout`;
    a child that exits or stays silent fails naming its exit code and its stderr's end."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        line = b""
    if not line.endswith(b"\n"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        raise RuntimeError(
            f"{name} did not announce readiness within {timeout:g} s (exit {proc.poll()}, "
            f"stdout {line[:200]!r}):\n{log_tail(stderr_path)}"
        )
    return line


def reap(proc: subprocess.Popen[Any], timeout: float = REAP_KILL_S) -> None:
    """Kill (if still running), wait and close its pipes: no process outlives its test."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def stop_by_eof(proc: subprocess.Popen[Any], grace_s: float = REAP_KILL_S) -> None:
    """Close its stdin (a server child exits on EOF by itself), give it `grace_s`, then reap."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)
    reap(proc)


# -- waiting -------------------------------------------------------------------------------------
def wait_for(
    predicate: Callable[[], object], *, timeout: float, what: str, poll: float = 0.02
) -> None:
    """Bounded polling for a condition another process brings about (a hang cap, not a timing)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def wait_for_file(path: Path, timeout: float = BARRIER_TIMEOUT_S) -> None:
    """A file barrier: another process creates `path` when it has reached its side."""
    wait_for(path.exists, timeout=timeout, what=f"barrier file {path}", poll=BARRIER_POLL_S)


# -- readiness-announcing helpers ----------------------------------------------------------------
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


def wait_exit(running: Running, timeout: float) -> int:
    try:
        return running.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{running.name} (pid {running.pid}) still running after {timeout:g} s"
        ) from None


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
        """Start `argv` and wait for its `READY pid=N` / `LISTENING 127.0.0.1:P pid=N` line."""
        stderr_path, events_path = self._paths(name)
        full = list(argv) + (["--events", str(events_path)] if events else [])
        proc = spawn(full, stderr_path=stderr_path, stdout=subprocess.PIPE, env=env)
        self.popens.append(proc)
        if deaf:
            self.deaf.add(proc.pid)
        line = first_line(proc, name=name, stderr_path=stderr_path)
        match = _READY.match(line)
        if match is None:
            raise RuntimeError(f"{name} announced {line[:200]!r}, not a readiness line")
        port = int(match.group(1)) if match.group(1) else None
        pid = int(match.group(2))
        running = Running(proc, pid, port, name, stderr_path, events_path if events else None)
        self.started.append(running)
        return running

    def popen(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stdin: int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen[bytes]:
        """Start a process without a readiness line (workers); reaped like the others."""
        stderr_path, _ = self._paths(name)
        proc = spawn(argv, stderr_path=stderr_path, stdout=stdout, stdin=stdin, env=env)
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
            reap(proc)
        return reap_marked(self.workdir)


# -- processes we did not start ------------------------------------------------------------------
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


def reap_marked(under: Path) -> list[str]:
    """Stop every daemon rooted under `under` (spawned by ensure_daemon, a worker, the demo)."""
    strays = marked_processes(under)
    names = [describe_pid(p.pid) for p in strays]
    stop_pids(strays)
    return names


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


# -- ports ---------------------------------------------------------------------------------------
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


def listening_pids(ports: Iterable[int]) -> dict[int, int | None]:
    """Port → pid of the process listening on it, by the kernel's socket table (no connection
    is made; None when the table hides the pid)."""
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


# -- a second user -------------------------------------------------------------------------------
def as_user(uid: int) -> list[str]:
    """The argv prefix that runs a command as `uid` (same gid, no supplementary groups)."""
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@functools.cache
def second_user_python(*, same_version: bool = False) -> str | None:
    """The interpreter a child run `as_user()` can execute, or None when this machine cannot
    run a second uid: that needs root, `setpriv` and SYSTEM_PYTHON. With `same_version`, that
    interpreter must also be this one's X.Y (the child imports this venv's packages)."""
    if getattr(os, "geteuid", lambda: -1)() != 0 or shutil.which("setpriv") is None:
        return None
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return None
    if same_version:
        done = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.stdout.strip() != str(sys.version_info[:2]):
            return None
    return SYSTEM_PYTHON


# -- failure output ------------------------------------------------------------------------------
#: Secret shapes of this suite: the test server's tokens (secrets.token_urlsafe(32), 43 URL-safe
#: chars) and kitty's scope key (secrets.token_hex(32), 64 hex chars).
_SECRET_SHAPE: Final = re.compile(
    r"(?<![A-Za-z0-9_-])(?:[A-Za-z0-9_-]{43}|[0-9a-f]{64})(?![A-Za-z0-9_-])"
)


def mask_secrets(text: str) -> str:
    """`text` for a failure message with anything secret-shaped masked: if a process did leak a
    token or key into its output, the failure that shows that output must not repeat the leak."""
    return _SECRET_SHAPE.sub("<secret-shaped value masked>", text)


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a captured log for a failure message, secret-shaped values masked."""
    try:
        text = path.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"<log unreadable: {exc.strerror}>"
    return mask_secrets(text)
