"""Refresh-transaction benchmarks (NFR-02): overhead over the bare HTTP call, and contention.

1. Happy-path overhead: the full transaction (lock, re-read, one refresh request, atomic write
   with fsyncs, unlock, log line) against a bare HTTP POST of the same form to the same loopback
   token endpoint, interleaved, >= 500 of each. Target: p95 overhead <= 50 ms.
2. Contention: 8 processes holding the same expired session start a transaction at one file
   barrier; the server counts network refreshes per expiry window. Target: exactly 1.

The token endpoint is a tiny stdlib ``http.server`` on 127.0.0.1 that rotates on every refresh
(no dependency on the integration-test OAuth server). Benchmarks measure; they never assert.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Any

from _common import percentile

from kitty_auth_refresh import (
    Session,
    SessionStore,
    TokenEndpoint,
    run_refresh_transaction,
)

TARGET_OVERHEAD_P95_MS = 50.0
PROCESSES = 8
BARRIER_TIMEOUT_S = 60.0
POLL_S = 0.0005


class _TokenServer:
    """Rotating refresh-grant endpoint; ``refreshes`` counts every successful rotation."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.current = "ref-0"
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real server
            # Headers and body go out in two writes; with Nagle on, the client's delayed ACK adds
            # ~40 ms to every answer and the benchmark would measure TCP, not kitty.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                presented = form.get("refresh_token", [""])[0]
                with outer._lock:
                    if presented == "bare":  # the baseline call: same work, no rotation
                        code, body = 200, {"access_token": "a", "expires_in": 3600}
                    elif presented != outer.current:
                        code, body = 400, {"error": "invalid_grant"}
                    else:
                        outer.refreshes += 1
                        outer.current = f"ref-{outer.refreshes}"
                        code, body = (
                            200,
                            {
                                "access_token": f"acc-{outer.refreshes}",
                                "refresh_token": outer.current,
                                "expires_in": 3600,
                            },
                        )
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def _session(refresh_token: str, expired: bool) -> Session:
    now = dt.datetime.now(dt.UTC)
    ttl = dt.timedelta(seconds=-1 if expired else 3600)
    return Session("bench-session", "acc-0", refresh_token, now + ttl, now - dt.timedelta(hours=1))


def _overhead(iterations: int) -> tuple[list[float], list[float], list[float]]:
    server = _TokenServer()
    home = pathlib.Path(tempfile.mkdtemp(prefix="kitty-bench-auth-"))
    bare_ms: list[float] = []
    tx_ms: list[float] = []
    write_ms: list[float] = []
    try:
        store = SessionStore(home / "auth")
        store.write(_session(server.current, expired=True))
        lock_path = store.root / "refresh.lock"
        with TokenEndpoint(server.url, "bench") as endpoint:
            client = endpoint._http()  # the same pooled connection the transaction uses
            form = {"grant_type": "refresh_token", "refresh_token": "bare", "client_id": "bench"}
            headers = {"Accept": "application/json"}
            for i in range(iterations + 20):
                start = time.perf_counter()
                client.post(server.url, data=form, headers=headers).json()
                bare = (time.perf_counter() - start) * 1000
                in_memory = store.read()
                assert in_memory is not None
                start = time.perf_counter()
                run_refresh_transaction(store, in_memory, endpoint, lock_path)
                tx = (time.perf_counter() - start) * 1000
                # The durable write alone (two fsyncs), to show where the overhead goes.
                current = store.read()
                assert current is not None
                start = time.perf_counter()
                store.write(current)
                write = (time.perf_counter() - start) * 1000
                if i >= 20:  # warm-up: connection set-up, first imports
                    bare_ms.append(bare)
                    tx_ms.append(tx)
                    write_ms.append(write)
    finally:
        server.close()
    return bare_ms, tx_ms, write_ms


def _wait_for(paths: list[pathlib.Path]) -> None:
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while not all(p.exists() for p in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier not reached: {[str(p) for p in paths if not p.exists()]}")
        time.sleep(POLL_S)


def _worker(home: str, url: str, index: int, windows: int) -> None:
    """One contender process: per window, load the (expired) session, meet, run one transaction."""
    base = pathlib.Path(home)
    store = SessionStore(base / "auth")
    with TokenEndpoint(url, "bench") as endpoint:
        for w in range(windows):
            _wait_for([base / f"prep-{w}"])
            in_memory = store.read()
            assert in_memory is not None
            (base / f"ready-{w}-{index}").touch()
            _wait_for([base / f"go-{w}"])
            result = run_refresh_transaction(
                store, in_memory, endpoint, base / "auth" / "refresh.lock"
            )
            # Write then rename: the main process must never read a half-written marker.
            temp = base / f".done-{w}-{index}.tmp"
            temp.write_text(result.outcome.value)
            temp.replace(base / f"done-{w}-{index}")


def _contention(windows: int) -> tuple[list[int], dict[str, int]]:
    server = _TokenServer()
    base = pathlib.Path(tempfile.mkdtemp(prefix="kitty-bench-contend-"))
    store = SessionStore(base / "auth")
    per_window: list[int] = []
    outcomes: dict[str, int] = {}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(PROCESSES):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        str(base),
                        server.url,
                        str(i),
                        str(windows),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
        for w in range(windows):
            store.write(_session(server.current, expired=True))  # a new expiry window
            before = server.refreshes
            (base / f"prep-{w}").touch()
            _wait_for([base / f"ready-{w}-{i}" for i in range(PROCESSES)])
            (base / f"go-{w}").touch()
            done = [base / f"done-{w}-{i}" for i in range(PROCESSES)]
            _wait_for(done)
            per_window.append(server.refreshes - before)
            for path in done:
                outcome = path.read_text()
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        for proc in procs:
            proc.wait(30)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        server.close()
    return per_window, outcomes


def run(quick: bool) -> str:
    logging.getLogger("kitty_auth_refresh").setLevel(logging.WARNING)
    iterations = 50 if quick else 500
    windows = 3 if quick else 20
    bare, tx, writes = _overhead(iterations)
    overhead = [t - b for t, b in zip(tx, bare, strict=True)]
    p95_over = percentile(tx, 0.95) - percentile(bare, 0.95)
    per_window, outcomes = _contention(windows)
    exact = sum(1 for n in per_window if n == 1)
    rows = [
        ("bare HTTP POST (same client, same server)", bare),
        ("refresh transaction (happy path)", tx),
        ("per-iteration overhead (transaction - bare)", overhead),
        ("of which: atomic store write alone (temp + fsync + replace + dir fsync)", writes),
    ]
    lines = [
        "## kitty-auth-refresh: refresh transaction",
        "",
        f"Loopback stdlib token endpoint, {iterations} interleaved iterations after 20 warm-up "
        "(lock + re-read + request + atomic write with fsyncs + unlock vs the bare POST).",
        "",
        "| measurement | p50 ms | p95 ms | mean ms |",
        "|---|---|---|---|",
    ]
    for name, values in rows:
        lines.append(
            f"| {name} | {percentile(values, 0.5):.2f} | {percentile(values, 0.95):.2f} | "
            f"{statistics.fmean(values):.2f} |"
        )
    met = p95_over <= TARGET_OVERHEAD_P95_MS
    lines += [
        "",
        f"- Overhead at p95 (p95 transaction - p95 bare): **{p95_over:.2f} ms**; target "
        f"<= {TARGET_OVERHEAD_P95_MS:.0f} ms (NFR-02): **{'met' if met else 'NOT met'}**.",
        "",
        f"Contention: {PROCESSES} processes with the same expired session released by one file "
        f"barrier, {windows} expiry windows.",
        "",
        "| windows | refreshes per window (min / max) | windows with exactly 1 | outcomes |",
        "|---|---|---|---|",
        f"| {windows} | {min(per_window)} / {max(per_window)} | {exact} / {windows} | "
        + ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items()))
        + " |",
        "",
        f"- Target: exactly 1 network refresh per window: "
        f"**{'met' if exact == windows else 'NOT met'}**.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        print(run("--quick" in sys.argv))
