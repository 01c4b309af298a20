"""Bodies of the helper processes of the daemon/doctor matrices (INT-01/02/03/06/08) and the demo,
run as `python _child.py daemon <command>` (`_daemons.py` starts them; see `_child.py`):

* `count`: a listener that appends `connect <client port>` for every accepted connection and
  `signal <n>` for every catchable signal to an events file (`Running.settle()` is the barrier
  to call before reading them); `--kitty FAMILY` makes it answer a valid, same-scope
  health payload (so it would be `safe_auto` if it sat inside the range), otherwise it answers
  like an unrelated web app (third-party).
* `sleeper`: an unrelated process that records signals (the PID-reuse victim).
* `busy-daemon`: a `DaemonServer` whose busy probe is "a file exists" and whose every retirement
  tick is appended to a file, so a test can watch it stay while busy and retire once idle.
* `hold-lock`: holds a `MachineFileLock` like a refresh that hangs, until killed.
* `ensure`: one `ensure_daemon` caller released by a file barrier (INT-06 convergence).

Each prints one `LISTENING 127.0.0.1:<port> pid=<pid>` or `READY pid=<pid>` line when ready.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _harness import OBSERVED_SIGNALS, SENTINEL_SIGNAL, wait_for_file


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


def _ensure(args: argparse.Namespace) -> int:
    from kitty_orphan_sweep import ensure_daemon

    Path(args.ready).touch()
    wait_for_file(Path(args.go))
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
    parser = argparse.ArgumentParser(prog="_child.py daemon")
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
