"""The reference daemon: ``kitty-daemon`` / ``python -m kitty_daemon_identity`` (DID-24).

A real daemon built on ``DaemonServer`` that every live test uses. It binds ``--port`` or
``$KITTY_DAEMON_PORT`` or the first free port of its family's range, takes its daemon root from
its root marker (else ``--root``, else the default home), ensures the scope key, prints exactly
one ``LISTENING 127.0.0.1:<port> pid=<pid>`` line when ready and serves until shut down,
SIGTERM/SIGINT, or self-retirement. Exit codes: 0 stopped cleanly, 1 runtime error, 2 bad
arguments/configuration, 3 port taken (or no free port in the range).

Test flags shape its behaviour: ``--advertise-version`` (health ``package_version`` only),
``--wedge accept|backlog`` (accept and never answer / listen and never accept),
``--ignore-sigterm``, ``--ignore-shutdown`` (answers 202, keeps running), ``--busy``, ``--tick``,
``--idle-limit``, ``--retire-singleton-on-idle``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Final, NoReturn, TextIO, TypeVar

from kitty_filelock import frozen_dataclass

from . import __version__, _constants
from ._errors import ConfigError, PortTaken, UsageError
from ._family import DaemonFamily
from ._launch import EXIT_PORT_TAKEN, bind_first, daemon_launch, parse_port
from ._markers import strip_markers
from ._profile import as_family
from ._server import LOOPBACK, DaemonServer
from ._state import ensure_scope_key

__all__ = ["DaemonOptions", "ExitCode", "PortTaken", "UsageError", "main", "parse_options", "run"]

logger = logging.getLogger("kitty_daemon_identity.daemon")
_T = TypeVar("_T")

_MAX_HELD_CONNECTIONS: Final = 1024  # --wedge accept keeps sockets open, but not unboundedly
_ACCEPT_POLL_S: Final = 0.1


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    PORT_TAKEN = EXIT_PORT_TAKEN  # the spawn contract's "port taken"


@frozen_dataclass
class DaemonOptions:
    family: DaemonFamily
    port: int | None
    root: Path
    advertise_version: str
    wedge: str | None
    ignore_sigterm: bool
    ignore_shutdown: bool
    busy: bool
    tick_s: float
    idle_limit_s: float
    retire_singleton_on_idle: bool
    log_level: str = "info"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds > 0")
    return value


def _port(text: str) -> int:
    try:
        return parse_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # raise instead of exit
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="kitty-daemon",
        description="kitty reference daemon: health, authenticated shutdown, self-retirement.",
    )
    parser.add_argument("--family", choices=[f.value for f in DaemonFamily], default="sync")
    parser.add_argument("--port", type=_port, help="port to bind (may lie outside the range)")
    parser.add_argument("--root", type=Path, help="daemon root (the root marker wins)")
    parser.add_argument("--advertise-version", metavar="V", help="health package_version only")
    parser.add_argument("--wedge", choices=["accept", "backlog"])
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--ignore-shutdown", action="store_true")
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--tick", type=_positive_float, metavar="S")
    parser.add_argument("--idle-limit", type=_positive_float, metavar="S")
    parser.add_argument("--retire-singleton-on-idle", action="store_true")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning"],
        default="info",
        help="stderr log level (debug shows every retirement tick)",
    )
    parser.add_argument("--version", action="version", version=f"kitty-daemon {__version__}")
    return parser


def parse_options(argv: Sequence[str], environ: Mapping[str, str]) -> DaemonOptions:
    """Turn argv + environment into options; raise ``UsageError`` with a clear message."""
    # Spawners append the markers; they are evidence for scanners, not options for argparse.
    args = build_parser().parse_args(strip_markers(argv))
    family = DaemonFamily(args.family)
    launch = daemon_launch(family, argv, environ, root=args.root)
    port: int | None = args.port if args.port is not None else launch.port
    root = launch.root
    version = args.advertise_version if args.advertise_version is not None else __version__
    if not 0 < len(version) <= 64:
        raise UsageError(f"--advertise-version {version!r} must be 1..64 characters")
    return DaemonOptions(
        family=family,
        port=port,
        root=root,
        advertise_version=version,
        wedge=args.wedge,
        ignore_sigterm=args.ignore_sigterm,
        ignore_shutdown=args.ignore_shutdown,
        busy=args.busy,
        tick_s=args.tick if args.tick is not None else float(_constants.DAEMON_TICK_SECONDS),
        idle_limit_s=(
            args.idle_limit
            if args.idle_limit is not None
            else float(_constants.IDLE_RETIREMENT_SECONDS)
        ),
        retire_singleton_on_idle=args.retire_singleton_on_idle,
        log_level=args.log_level,
    )


class _ReferenceServer(DaemonServer):
    """DaemonServer whose shutdown request can be ignored (``--ignore-shutdown``)."""

    ignore_shutdown_requests = False

    def _begin_shutdown(self, reason: str) -> None:
        if self.ignore_shutdown_requests and reason == "shutdown_request":
            logger.info("shutdown request answered 202 and ignored (--ignore-shutdown)")
            return
        super()._begin_shutdown(reason)


def _bind_first(options: DaemonOptions, bind: Callable[[int], _T]) -> _T:
    """Bind the explicit port or the first free port of the family's range."""
    return bind_first(as_family(options.family), options.port, bind)


def _bind_raw(port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if sys.platform.startswith("linux"):  # same reasoning as DaemonServer's listener
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _announce(out: TextIO, port: int) -> None:
    try:
        out.write(f"LISTENING {LOOPBACK}:{port} pid={os.getpid()}\n")
        out.flush()
    except (OSError, ValueError):
        # Nobody is reading stdout any more (closed pipe): keep serving; health is the truth.
        logger.warning("could not write the LISTENING line to stdout")


def _hold_connections(sock: socket.socket, stop: threading.Event) -> None:
    """``--wedge accept``: accept every connection and never answer."""
    held: list[socket.socket] = []
    sock.settimeout(_ACCEPT_POLL_S)
    try:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # listening socket closed
            held.append(conn)
            if len(held) > _MAX_HELD_CONNECTIONS:
                held.pop(0).close()
    finally:
        for conn in held:
            conn.close()


def _run_wedged(options: DaemonOptions, out: TextIO, stop: threading.Event) -> int:
    # backlog mode never accepts, so the kernel queue is what makes connects "succeed".
    sock = _bind_first(options, lambda p: _bind_raw(p, _constants.LISTEN_BACKLOG))
    port = sock.getsockname()[1]
    holder = None
    if options.wedge == "accept":
        holder = threading.Thread(target=_hold_connections, args=(sock, stop), daemon=True)
        holder.start()
    _announce(out, port)
    try:
        stop.wait()
    finally:
        sock.close()
        if holder is not None:
            holder.join(timeout=5)
    return ExitCode.OK


def _run_server(
    options: DaemonOptions, out: TextIO, stop: threading.Event, token: str | None, hard_exit: bool
) -> int:
    def make(port: int) -> _ReferenceServer:
        return _ReferenceServer(
            options.family,
            port,
            options.root,
            package_version=options.advertise_version,
            token=token,
            busy_probe=lambda: options.busy,
            tick_s=options.tick_s,
            idle_limit_s=options.idle_limit_s,
            retire_singleton_on_idle=options.retire_singleton_on_idle,
            hard_exit_after_retire=hard_exit,
        )

    server = _bind_first(options, make)
    server.ignore_shutdown_requests = options.ignore_shutdown

    def relay() -> None:
        stop.wait()
        server.shutdown()

    # stop (signals, in-process callers) is relayed from its own thread: shutdown() must never
    # run on the thread that runs serve_forever.
    threading.Thread(target=relay, name="kitty-daemon-stop-relay", daemon=True).start()
    _announce(out, server.port)
    try:
        server.serve_forever()
    finally:
        server.close()
    if server.retire_decision is not None:
        logger.debug("exiting after retirement (%s)", server.retire_decision.reason.value)
    return ExitCode.OK


def _install_signals(options: DaemonOptions, stop: threading.Event) -> None:
    def on_signal(signum: int, frame: object) -> None:
        logger.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, signal.SIG_IGN if options.ignore_sigterm else on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run(
    argv: Sequence[str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stop: threading.Event | None = None,
    hard_exit: bool = True,
    configure_logging: bool = False,
) -> int:
    """Run the reference daemon; return its exit code. ``stop`` lets in-process callers end it.

    Signals are installed only on the main thread (Python allows nothing else), so tests can
    run the daemon on a thread and stop it through ``stop`` or ``POST /api/shutdown``.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    stop = threading.Event() if stop is None else stop
    try:
        options = parse_options(argv, os.environ)
    except UsageError as exc:
        err.write(f"kitty-daemon: error: {exc}\n")
        return ExitCode.USAGE
    except SystemExit as exc:  # --help / --version printed and asked to exit
        return int(exc.code or 0) if isinstance(exc.code, int | None) else ExitCode.USAGE
    if configure_logging:
        # Only the program configures logging; the library never adds handlers.
        logging.basicConfig(
            level=options.log_level.upper(),
            stream=err,
            format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        )
    # The instance token is a secret: take it out of our environment so children never inherit it.
    token = os.environ.pop("KITTY_DAEMON_TOKEN", "") or None
    if threading.current_thread() is threading.main_thread():
        _install_signals(options, stop)
    try:
        ensure_scope_key(options.root)
        if options.wedge is not None:
            return _run_wedged(options, out, stop)
        return _run_server(options, out, stop, token, hard_exit)
    except PortTaken as exc:
        err.write(f"kitty-daemon: {exc}; choose another --port or free it\n")
        return ExitCode.PORT_TAKEN
    except ConfigError as exc:
        err.write(f"kitty-daemon: error: {exc}\n")
        return ExitCode.USAGE
    except OSError as exc:
        err.write(f"kitty-daemon: cannot start: {exc}\n")
        return ExitCode.ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point (``kitty-daemon``) and ``python -m kitty_daemon_identity``."""
    return run(list(sys.argv[1:] if argv is None else argv), configure_logging=True)


def _exit_now(code: int) -> NoReturn:  # pragma: no cover - exercised by the subprocess tests
    """Leave without interpreter finalisation once everything is flushed.

    The server is closed and the logs are flushed, so nothing is left to do; skipping the
    finalisation (module teardown, GC of every object) lets a stopped daemon release its pid
    tens of milliseconds sooner, which is what a parallel sweep of many orphans waits for.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover - exercised by the subprocess tests
    _exit_now(main())
