"""kitty-doctor benchmark (DOC-13): cold-process wall time of `kitty-doctor --json`.

Measures `kitty-doctor --json --family sync` (target: median <= 300 ms) and `--family all`,
each as a fresh interpreter, with 0 and with 8 listeners (real reference daemons) in shifted
ranges of the default size (sync 20400-20450, dashboard 20450-20550), plus the import-time
breakdown from `python -X importtime` (the cold start on a fresh machine against a bare
interpreter is bench_coldstart's). Every process started here is killed and reaped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import doctor_argv, percentile

from kitty_auth_refresh import Session, SessionStore
from kitty_daemon_identity import (
    DaemonFamily,
    StateRecord,
    marker_args,
    parse_health,
    process_start_time,
    write_state,
)

SYNC_PORTS = "20400-20450"  # default sync size (50 ports), shifted
DASHBOARD_PORTS = "20450-20550"  # default dashboard size (100 ports), shifted
LISTENER_PORTS = tuple(range(20400, 20408))  # 8 listeners in the sync range
TARGET_MS = 300.0
WEDGED_TARGET_MS = 1500.0
_LISTENING = re.compile(r"LISTENING 127\.0\.0\.1:(\d+) pid=(\d+)")


def _readline(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise TimeoutError(f"pid {proc.pid}: not ready within {timeout_s} s")
    return proc.stdout.readline()


def _write_session(home: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    SessionStore(home / "auth").write(
        Session(
            session_id="bench-session",
            access_token="bench-access-token-0000",
            refresh_token="bench-refresh-token-0000",
            access_expires_at=now + dt.timedelta(minutes=30),
            issued_at=now,
            subject="bench",
        )
    )


@contextmanager
def _listeners(
    home: Path, env: dict[str, str], count: int, *, wedged: bool = False
) -> Iterator[None]:
    """`count` reference daemons in the sync range: one recorded singleton, the rest orphans
    (one without markers, so the report has safe_auto and operator_required rows); or, with
    `wedged`, half that accept and never answer and half that never accept."""
    root = (home / "daemon").resolve()
    procs: list[subprocess.Popen[str]] = []
    try:
        for i, port in enumerate(LISTENER_PORTS[:count]):
            argv = [sys.executable, "-m", "kitty_daemon_identity", "--port", str(port)]
            if wedged:
                argv += ["--wedge", "accept" if i % 2 else "backlog"]
            if i != count - 1:
                argv += marker_args(root, sys.executable)
            else:
                argv += ["--root", str(root)]
            procs.append(
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
                )
            )
        for proc in procs:
            if not _LISTENING.match(_readline(proc)):
                raise RuntimeError("reference daemon did not start")
        if procs and not wedged:
            _record_singleton(root, LISTENER_PORTS[0])
        elif procs:
            _record_wedged_singleton(root, LISTENER_PORTS[0], procs[0].pid)
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


def _record_singleton(root: Path, port: int) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    payload = parse_health(raw.partition(b"\r\n\r\n")[2])
    assert not hasattr(payload, "reason"), payload
    write_state(
        root,
        StateRecord(
            family=DaemonFamily.SYNC,
            pid=payload.pid,
            port=payload.port,
            process_started_at=payload.process_started_at,
            package_version=payload.package_version,
            protocol_version=payload.protocol_version,
            started_at=payload.started_at,
            instance_id=payload.instance_id,
            scope_id=payload.singleton_scope_id,
        ),
    )


def _record_wedged_singleton(root: Path, port: int, pid: int) -> None:
    """Record a wedged daemon as the singleton: the doctor's own health probe must time out."""
    started = process_start_time(pid)
    assert started is not None
    write_state(
        root,
        StateRecord(
            family=DaemonFamily.SYNC,
            pid=pid,
            port=port,
            process_started_at=started,
            package_version="0.1.0",
            protocol_version=1,
            started_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            instance_id="0" * 32,
            scope_id="bench",
        ),
    )


def _measure(
    args: Sequence[str], env: dict[str, str], runs: int
) -> tuple[list[float], dict[str, Any]]:
    times: list[float] = []
    last: dict[str, Any] = {}
    argv = [*doctor_argv(), *args]
    subprocess.run(argv, env=env, capture_output=True, check=False)  # warm the page cache
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        times.append((time.perf_counter() - start) * 1000.0)
        last = json.loads(proc.stdout)
    return times, last


def _import_breakdown(env: dict[str, str]) -> list[tuple[str, float]]:
    """Cumulative ms of each top-level import, plus httpx/rich wherever they were pulled in."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kitty_doctor", "--json", "--family", "sync"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    out: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if not match:
            continue
        cumulative_ms = int(match.group(1)) / 1000.0
        indent, name = match.group(2), match.group(3)
        if not indent and cumulative_ms >= 5.0:
            out[name] = cumulative_ms
        elif name in ("httpx", "httpx._main", "psutil", "typer"):
            out[f"{name} (nested)"] = cumulative_ms
    return sorted(out.items(), key=lambda kv: -kv[1])


def run(quick: bool) -> str:
    runs = 5 if quick else 21
    tmp = Path(tempfile.mkdtemp(prefix="kitty-bench-doctor-"))
    home = tmp / "home"
    env = dict(
        os.environ,
        KITTY_HOME=str(home),
        KITTY_SYNC_PORTS=SYNC_PORTS,
        KITTY_DASHBOARD_PORTS=DASHBOARD_PORTS,
        NO_COLOR="1",
        # A cold interpreter, as a user runs it: bytecode caches exist after the first run of an
        # installed package. Caches go to a private prefix (nothing written into the tree); the
        # warm-up run in _measure fills it. The no-cache figure is reported separately below.
        PYTHONPYCACHEPREFIX=str(tmp / "pycache"),
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    nocache_env = dict(env, PYTHONDONTWRITEBYTECODE="1")
    nocache_env.pop("PYTHONPYCACHEPREFIX")
    rows: list[str] = []
    sections: dict[str, list[float]] = {}
    try:
        _write_session(home)
        for listeners in (0, 8):
            with _listeners(home, env, listeners):
                for family in ("sync", "all"):
                    times, doc = _measure(["--json", "--family", family], env, runs)
                    med, p95 = statistics.median(times), percentile(times, 0.95)
                    if family == "sync":
                        verdict = "met" if med <= TARGET_MS else "NOT met"
                        target = f"median ≤ {TARGET_MS:.0f} ms: {verdict}"
                    else:
                        target = "reported alongside"
                    orphans = sum(len(v) for v in (doc.get("orphans") or {}).values())
                    rows.append(
                        f"| `--json --family {family}` | {listeners} | {orphans} | {runs} |"
                        f" {med:.0f} | {p95:.0f} | {min(times):.0f} | {target} |"
                    )
                    for name, sec in doc.get("sections", {}).items():
                        sections.setdefault(f"{name} ({listeners} listeners)", []).append(
                            sec["duration_ms"]
                        )
        with _listeners(home, env, 8, wedged=True):
            times, doc = _measure(["--json", "--family", "sync"], env, max(3, runs // 2))
            med, p95 = statistics.median(times), percentile(times, 0.95)
            verdict = "met" if max(times) <= WEDGED_TARGET_MS else "NOT met"
            orphans = sum(len(v) for v in (doc.get("orphans") or {}).values())
            rows.append(
                f"| `--json --family sync`, all wedged | 8 | {orphans} | {len(times)} |"
                f" {med:.0f} | {p95:.0f} | {min(times):.0f} |"
                f" every run ≤ {WEDGED_TARGET_MS:.0f} ms: {verdict} |"
            )
        nocache, _ = _measure(["--json", "--family", "sync"], nocache_env, max(3, runs // 2))
        rows.append(
            f"| `--json --family sync`, no bytecode cache | 0 | 0 | {len(nocache)} |"
            f" {statistics.median(nocache):.0f} | {percentile(nocache, 0.95):.0f} |"
            f" {min(nocache):.0f} |"
            " informational (`PYTHONDONTWRITEBYTECODE=1`: every module compiled each run) |"
        )
        breakdown = _import_breakdown(env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        "## kitty-doctor (DOC-13)",
        "",
        "Cold interpreter per run (`kitty-doctor` console script, `subprocess.run`), wall time,",
        "with bytecode caches (as after the first run of an installed package) unless noted;",
        f"ranges shifted to sync {SYNC_PORTS}, dashboard {DASHBOARD_PORTS}; listeners are real",
        "reference daemons in the sync range (1 recorded singleton, 6 safe_auto, 1 pre-marker;",
        "in the wedged row 4 `--wedge accept` + 4 `--wedge backlog`, one of them recorded as the",
        "singleton so the daemon section's own health probe times out too).",
        "",
        "| command | listeners | orphans shown | runs | p50 ms | p95 ms | min ms | target |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Import-time breakdown (`python -X importtime -m kitty_doctor --json --family sync`, one",
        "run): cumulative ms of each top-level import >= 5 ms, and where httpx/psutil/typer were",
        "pulled in by something else (`nested`; httpx._main = httpx's CLI: click/rich/pygments):",
        "",
        "| module | cumulative ms |",
        "|---|---|",
        *[f"| {name} | {ms:.1f} |" for name, ms in breakdown],
        "",
        "Section collection time inside the process (last run of each command, ms):",
        "",
        "| section | values |",
        "|---|---|",
        *[f"| {k} | {', '.join(str(v) for v in vs)} |" for k, vs in sections.items()],
    ]
    if any(name.startswith("httpx") for name, _ in breakdown):
        lines += [
            "",
            "Note: `httpx` is imported at start-up by kitty-auth-refresh (an eager module-level",
            "import), although no doctor section makes an HTTP request through it; kitty-doctor's",
            "entry point already keeps httpx's own CLI (click, rich, pygments) out of the process.",
        ]
    return "\n".join(lines)
