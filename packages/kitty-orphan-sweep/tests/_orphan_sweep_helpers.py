"""Real-process helpers for the kitty-orphan-sweep tests (reference daemons, plain listeners).

Readiness is always a line printed by the child after it listens (a pipe, never a sleep), and
every helper process is killed and reaped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from kitty_daemon_identity import (
    ROOT_MARKER_PREFIX,
    CleanupClass,
    DaemonFamily,
    DaemonIdentityRecord,
    IdentitySource,
    SkipReason,
    StateRecord,
    daemon_root,
    marker_args,
    write_state,
)

READY_TIMEOUT_S = 20.0
_LISTENING = re.compile(rb"LISTENING 127\.0\.0\.1:(\d+) pid=(\d+)")

#: The package's test port window starts here (20200 unless KITTY_SWEEP_TEST_PORT_BASE moves it,
#: e.g. beside a mutation run): 200 ports, blocks handed out by conftest, fixed ones at +180..+199.
PORT_BASE = int(os.environ.get("KITTY_SWEEP_TEST_PORT_BASE", "20200"))


def read_line(proc: subprocess.Popen[bytes], timeout: float = READY_TIMEOUT_S) -> bytes:
    """One stdout line of `proc`, bounded in time (a hang cap, not an ordering device)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not sel.select(remaining):
                raise TimeoutError(f"pid {proc.pid} printed no line within {timeout} s: {buf!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"pid {proc.pid} exited ({proc.wait()}) before a line: {buf!r}")
            buf += chunk
    return buf.split(b"\n", 1)[0]


def kill_and_reap(proc: subprocess.Popen[bytes] | psutil.Process) -> None:
    try:
        if isinstance(proc, subprocess.Popen):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
        else:
            proc.kill()
            psutil.wait_procs([proc], timeout=10)
    except (psutil.Error, ProcessLookupError):
        pass


@dataclass(frozen=True)
class Env:
    """One test's private home and port blocks (see conftest.env)."""

    home: Path
    sync: range
    dashboard: range


@dataclass
class Spawned:
    proc: subprocess.Popen[bytes]
    port: int
    pid: int

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False


@dataclass
class ProcessPool:
    """Starts helper processes and reaps every one of them at teardown."""

    log_dir: Path
    started: list[Spawned] = field(default_factory=list)

    def reference(
        self,
        home: Path,
        port: int,
        *,
        family: str = "sync",
        markers: str | Path | None = "ours",
        args: Sequence[str] = (),
    ) -> Spawned:
        """`python -m kitty_daemon_identity` on `port`; markers: "ours", another home, or None."""
        argv = [sys.executable, "-m", "kitty_daemon_identity", "--port", str(port)]
        argv += ["--family", family, *args]
        if markers == "ours":
            argv += marker_args(daemon_root(home), sys.executable)
        elif isinstance(markers, Path):
            argv += marker_args(daemon_root(markers), sys.executable)
        env = dict(os.environ, KITTY_HOME=str(home))
        return self._start(argv, env, port)

    def _start(self, argv: list[str], env: dict[str, str], port: int) -> Spawned:
        log = open(self.log_dir / f"helper-{port}-{len(self.started)}.log", "ab")  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        finally:
            log.close()
        spawned = Spawned(proc, port, proc.pid)
        self.started.append(spawned)
        line = read_line(proc)
        match = _LISTENING.search(line)
        if match is not None:
            spawned.port, spawned.pid = int(match.group(1)), int(match.group(2))
        return spawned

    def python(self, code: str, port: int, *extra_argv: str) -> Spawned:
        """A plain Python listener (not spawn-shaped); it prints READY once listening."""
        argv = [sys.executable, "-c", textwrap.dedent(code), str(port), *extra_argv]
        return self._start(argv, dict(os.environ), port)

    def third_party_http(self, port: int) -> Spawned:
        return self.python(THIRD_PARTY_HTTP, port)

    def silent_tcp(self, port: int) -> Spawned:
        return self.python(SILENT_TCP, port)

    def sleeper(self, *extra_argv: str) -> Spawned:
        return self.python(SLEEPER, 0, *extra_argv)

    def close(self) -> None:
        for spawned in self.started:
            kill_and_reap(spawned.proc)


THIRD_PARTY_HTTP = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"hello": "world"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("READY", flush=True)
srv.serve_forever()
"""

SILENT_TCP = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
print("READY", flush=True)
held = []
while True:
    conn, _ = s.accept()
    held.append(conn)  # accept and never answer
"""

SLEEPER = """
import signal, sys, time
if "--ignore-sigterm" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("READY", flush=True)
time.sleep(3600)
"""


class RecordingListener:
    """In-process loopback listener that keeps what each connection sent (up to the end of the
    request head; b"" for a bare connect probe) and, given a `status`, answers every request
    with it: a squatter, or a daemon stand-in that accepts (202) or refuses a shutdown."""

    def __init__(self, port: int, status: int | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.status = status
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2 if self.status is not None else 0.2)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                        data += chunk
                self.requests.append(data)
                if self.status is not None and data:
                    with contextlib.suppress(OSError):
                        conn.sendall(
                            b"HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            % self.status
                        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)


class CountingListener:
    """In-process loopback listener that counts connections (a hostile 'proxy' stand-in)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = port
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self._stop.is_set():
                conn.close()
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        # shutdown() wakes the blocked accept(); close() alone would leave the port listening.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self.sock.close()


class SuspectListener:
    """A listener whose accept queue is full: further connects hang (SYN dropped) → suspect."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(0)
        self.fillers: list[socket.socket] = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            self.fillers.append(c)

    def close(self) -> None:
        for c in self.fillers:
            c.close()
        self.sock.close()


def processes_with_marker_under(base: Path) -> list[psutil.Process]:
    """Processes whose root marker points under `base` (daemons our tests spawned)."""
    prefix = ROOT_MARKER_PREFIX + str(base.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            argv = proc.info["cmdline"] or []
        except psutil.Error:
            continue
        if any(isinstance(a, str) and a.startswith(prefix) for a in argv):
            found.append(proc)
    return found


def reap_marked(base: Path) -> list[str]:
    """Kill and reap every process carrying a root marker under `base`; describe them."""
    procs = processes_with_marker_under(base)
    names = []
    for proc in procs:
        try:
            names.append(f"{proc.pid}:{' '.join(proc.cmdline()[:6])}")
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)
    return names


def make_record(
    pid: int | None,
    port: int,
    started: float | None,
    *,
    cleanup_class: str = "safe_auto",
    skip_reason: str | None = None,
    family: str = "sync",
    package_version: str | None = "0.1.0",
    stale: bool | None = False,
) -> DaemonIdentityRecord:
    """A hand-built classifier record (unit seam for sweep's guards and escalation)."""
    return DaemonIdentityRecord(
        daemon_family=family,
        port=port,
        pid=pid,
        process_started_at=started,
        protocol_version=1,
        package_version=package_version,
        singleton_scope_id=None,
        daemon_root=None,
        connect_state="open",
        health_status="ok",
        identity_source=IdentitySource.HEALTH_SELF_REPORT,
        executable_summary=None,
        spawn_shape_ok=True,
        self_report_matches_listener=True,
        start_time_matches=True,
        is_recorded_singleton=False,
        stale_version=stale,
        busy=False,
        idle_s=0.0,
        cleanup_class=CleanupClass(cleanup_class),
        skip_reason=SkipReason(skip_reason) if skip_reason else None,
    )


def record_singleton(home: Path, daemon: Spawned) -> StateRecord:
    """Write the family state record naming `daemon` (as ensure_daemon would have)."""
    from kitty_orphan_sweep._scan import probe_health

    probe = probe_health([daemon.port], 5.0)[daemon.port]
    payload = probe.payload
    assert payload is not None, f"daemon on {daemon.port} did not answer health: {probe}"
    record = StateRecord(
        family=DaemonFamily(payload.daemon_family),
        pid=payload.pid,
        port=payload.port,
        process_started_at=payload.process_started_at,
        package_version=payload.package_version,
        protocol_version=payload.protocol_version,
        started_at=payload.started_at,
        instance_id=payload.instance_id,
        scope_id=payload.singleton_scope_id,
    )
    write_state(daemon_root(home), record)
    return record
