"""kitty-daemon-identity benchmarks: self-retirement and shutdown latency of the reference daemon.

Targets (NFR-02, DID-18): a superseded daemon retires within tick + 1 s of the state record naming
another live daemon; an authenticated shutdown ends the process within 1 s. Real reference daemons
on ports 20100-20199 (never the default ranges); every process started here is killed and reaped.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import percentile, read_line

from kitty_daemon_identity import (
    DaemonFamily,
    DaemonServer,
    StateRecord,
    ensure_scope_key,
    process_start_time,
    scope_id,
    state_path,
    write_state,
)

PORTS = range(20100, 20200)


def _free_ports(n: int) -> list[int]:
    found: list[int] = []
    for port in PORTS:
        with socket.socket() as s:
            if sys.platform.startswith("linux"):  # TIME_WAIT leftovers do not block the daemon
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == n:
            return found
    raise RuntimeError(f"fewer than {n} free ports in 20100-20199")


class _Lab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []

    def daemon(self, port: int, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kitty_daemon_identity",
                "--port",
                str(port),
                "--root",
                str(self.root),
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        line = read_line(proc)
        assert line.startswith(b"LISTENING"), line
        return proc

    def name_singleton(self, proc: subprocess.Popen[bytes], port: int) -> None:
        started = process_start_time(proc.pid)
        assert started is not None
        write_state(
            self.root,
            StateRecord(
                family=DaemonFamily.SYNC,
                pid=proc.pid,
                port=port,
                process_started_at=started,
                package_version="bench",
                protocol_version=1,
                started_at="2025-01-01T00:00:00Z",
                instance_id="0" * 32,
                scope_id=scope_id(self.root),
            ),
        )


@contextmanager
def _lab() -> Iterator[_Lab]:
    with tempfile.TemporaryDirectory(prefix="kitty-bench-daemon-") as tmp:
        root = (Path(tmp) / "daemon").resolve()
        root.mkdir(mode=0o700)
        lab = _Lab(root)
        try:
            yield lab
        finally:
            for proc in lab.procs:
                if proc.poll() is None:
                    proc.kill()
            for proc in lab.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
                if proc.stdout is not None:
                    proc.stdout.close()


def _post_shutdown(port: int, key: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            "/api/shutdown",
            body=b"{}",
            headers={
                "Host": f"127.0.0.1:{port}",
                "Content-Type": "application/json",
                "Authorization": f"Bearer {key}",
            },
        )
        return conn.getresponse().status
    finally:
        conn.close()


def _superseded(tick: float, n: int) -> list[float]:
    """Seconds from 'state record names another live daemon' to the orphan's exit."""
    out: list[float] = []
    with _lab() as lab:
        p_single, *p_orphans = _free_ports(1 + n)
        single = lab.daemon(p_single)
        for port in p_orphans:
            orphan = lab.daemon(port, "--tick", str(tick))
            t0 = time.monotonic()
            lab.name_singleton(single, p_single)
            orphan.wait(timeout=tick + 30)
            out.append(time.monotonic() - t0)
            state_path(lab.root, DaemonFamily.SYNC).unlink()  # next orphan starts unsuperseded
    return out


def _converge(k: int, tick: float) -> float:
    """K daemons started directly; the record names one; seconds until the other K-1 are gone."""
    with _lab() as lab:
        ports = _free_ports(k)
        procs = [lab.daemon(p, "--tick", str(tick)) for p in ports]
        t0 = time.monotonic()
        lab.name_singleton(procs[0], ports[0])
        for proc in procs[1:]:
            proc.wait(timeout=tick + 30)
        elapsed = time.monotonic() - t0
        assert procs[0].poll() is None
        return elapsed


def _shutdown(n: int) -> list[float]:
    """Seconds from sending an authenticated POST /api/shutdown to the process having exited."""
    out: list[float] = []
    with _lab() as lab:
        key = ensure_scope_key(lab.root)
        for port in _free_ports(n):
            proc = lab.daemon(port)
            t0 = time.monotonic()
            assert _post_shutdown(port, key) == 202
            proc.wait(timeout=30)
            out.append(time.monotonic() - t0)
    return out


def _health(n: int) -> list[float]:
    """Seconds per GET /api/health against an in-process DaemonServer (fresh connection each)."""
    with tempfile.TemporaryDirectory(prefix="kitty-bench-health-") as tmp:
        (port,) = _free_ports(1)
        server = DaemonServer(
            DaemonFamily.SYNC,
            port,
            Path(tmp),
            package_version="bench",
            hard_exit_after_retire=False,
        )
        thread = server.start()
        out: list[float] = []
        try:
            for _ in range(n):
                t0 = time.perf_counter()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/api/health", headers={"Host": f"127.0.0.1:{port}"})
                body = conn.getresponse().read()
                conn.close()
                out.append(time.perf_counter() - t0)
                json.loads(body)
        finally:
            server.close()
            thread.join(timeout=10)
        return out


def _row(name: str, values: list[float], target_s: float | None, unit: float = 1000.0) -> str:
    p50, p95, worst = statistics.median(values), percentile(values, 0.95), max(values)
    if target_s is None:
        verdict, target = "—", "—"
    else:
        verdict = "met" if worst <= target_s else "NOT met"
        target = f"≤ {target_s * unit:.0f}"
    return (
        f"| {name} | {len(values)} | {p50 * unit:.1f} | {p95 * unit:.1f} | {worst * unit:.1f} "
        f"| {target} | {verdict} |"
    )


def run(quick: bool) -> str:
    n = 3 if quick else 10
    rows = [
        _row("superseded retirement, tick 0.5 s", _superseded(0.5, n), 0.5 + 1.0),
        _row("superseded retirement, tick 0.2 s", _superseded(0.2, n), 0.2 + 1.0),
        _row(
            "K=10 direct starts converge to 1, tick 0.5 s",
            [_converge(10, 0.5) for _ in range(1 if quick else 3)],
            0.5 + 1.0,
        ),
        _row("authenticated shutdown → process exit", _shutdown(n), 1.0),
        _row("GET /api/health (new connection)", _health(50 if quick else 500), None),
    ]
    return "\n".join(
        [
            "## Daemon identity (kitty-daemon-identity)",
            "",
            "Reference daemons on ports 20100-20199. Retirement is measured from writing a state",
            "record that names another live daemon to the orphan's exit; shutdown from sending the",
            "authenticated request to the process having exited. Verdicts use the worst sample.",
            "",
            "| case | n | p50 ms | p95 ms | max ms | target ms | verdict |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
