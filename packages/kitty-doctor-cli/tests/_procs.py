"""Real helper processes for live tests: a lock holder and reference daemons.

Readiness is a line on the child's stdout (a pipe barrier, never a sleep); every child is killed
and waited for in `finally`/`close`. Ports come only from 20400-20599.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from kitty_daemon_identity import (
    DaemonFamily,
    StateRecord,
    marker_args,
    write_state,
)
from kitty_orphan_sweep import probe_health

READY_TIMEOUT_S: Final = 20.0
PORT_BLOCK: Final = range(20400, 20600)


def read_line(proc: subprocess.Popen[str], timeout_s: float = READY_TIMEOUT_S) -> str:
    """One stdout line from `proc`, or AssertionError after `timeout_s` (a hang cap)."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise AssertionError(f"child {proc.args!r} not ready after {timeout_s} s")
    return proc.stdout.readline()


def reap(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()


HOLDER = """
import sys
from kitty_filelock import MachineFileLock
lock = MachineFileLock(sys.argv[1], label="refresh", max_hold=10.0)
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


@contextmanager
def lock_holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A live process holding the refresh lock until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc).strip() == "held"
        yield proc
    finally:
        reap(proc)


def kill_holder_leaving_record(path: Path) -> None:
    """SIGKILL a holder so its record stays in the (now unheld) lock file."""
    with lock_holder(path) as proc:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


class Daemon:
    """A reference daemon (`python -m kitty_daemon_identity`) on a fixed loopback port."""

    def __init__(
        self,
        port: int,
        *,
        home: Path,
        family: str = "sync",
        markers: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        assert port in PORT_BLOCK
        assert port_is_free(port), f"port {port} is busy before the test started"
        self.port = port
        self.family = family
        self.root = (home / "daemon").resolve()
        argv = [sys.executable, "-m", "kitty_daemon_identity", "--family", family]
        argv += ["--port", str(port), *extra]
        if markers:
            argv += marker_args(self.root, sys.executable)
        else:
            argv += ["--root", str(self.root)]
        env = dict(os.environ, KITTY_HOME=str(home))
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        try:
            line = read_line(self.proc)
            assert line.startswith(f"LISTENING 127.0.0.1:{port} "), line
        except BaseException:
            reap(self.proc)
            raise
        self.pid = self.proc.pid

    def record(self) -> StateRecord:
        """A state record naming this daemon (built from its own health answer)."""
        payload = probe_health([self.port], 5.0)[self.port].payload
        assert payload is not None, f"daemon on {self.port} did not answer health"
        return StateRecord(
            family=DaemonFamily(self.family),
            pid=payload.pid,
            port=payload.port,
            process_started_at=payload.process_started_at,
            package_version=payload.package_version,
            protocol_version=payload.protocol_version,
            started_at=payload.started_at,
            instance_id=payload.instance_id,
            scope_id=payload.singleton_scope_id,
        )

    def make_singleton(self) -> StateRecord:
        rec = self.record()
        write_state(self.root, rec)
        return rec

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        reap(self.proc)


@contextmanager
def sleeper(*extra_argv: str) -> Iterator[subprocess.Popen[str]]:
    """A live process that is not a daemon (for reused/unhealthy state records); `extra_argv`
    lets a test give it a root marker."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; print('up', flush=True); sys.stdin.read()",
            *extra_argv,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc).strip() == "up"
        yield proc
    finally:
        reap(proc)


class ThirdParty:
    """A non-kitty HTTP listener (answers every request with `body`, 200 by default) that keeps
    what it was sent in `received`."""

    def __init__(self, port: int, status: bytes = b"200 OK", body: bytes = b"hello") -> None:
        import threading

        assert port in PORT_BLOCK
        self.port = port
        self.connections = 0
        self.received = bytearray()
        self._status = status
        self._body = body
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(1.0)
                try:
                    self.received += conn.recv(4096)
                    conn.sendall(
                        b"HTTP/1.0 " + self._status + b"\r\nContent-Type: text/html\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(self._body) + self._body
                    )
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
