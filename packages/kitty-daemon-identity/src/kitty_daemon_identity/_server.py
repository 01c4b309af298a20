"""``DaemonServer``: the small loopback-only HTTP server every kitty daemon runs (DID-17..DID-21).

Routes: ``GET /api/health`` (the DID-07 payload, unauthenticated, never counts as activity),
``POST /api/shutdown`` (instance token or scope key) and any extra route an embedding app adds
with ``add_route`` (authenticated unless declared ``public=True``). Every request must carry
``Host: 127.0.0.1:<port>`` or ``localhost:<port>`` (defeats DNS rebinding) and no ``Origin`` (no
browser may drive a daemon).
A retirement tick on its own thread applies ``should_retire`` and stops the server when told.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

from kitty_filelock import frozen_dataclass, frozen_replace, process_alive_since, process_start_time

from . import _constants
from ._family import DaemonFamily
from ._health import HealthExtra, HealthPayload, check_extra
from ._profile import Family, as_family
from ._retire import DaemonSelf, RetireDecision, should_retire
from ._scope import scope_id
from ._state import read_scope_key, read_state

__all__ = [
    "MAX_CONNECTIONS",
    "REQUEST_DEADLINE_SECONDS",
    "DaemonServer",
    "RouteHandler",
    "RouteRequest",
    "RouteRequestHandler",
]

logger = logging.getLogger(__name__)

RouteHandler = Callable[[Mapping[str, Any]], tuple[int, Mapping[str, Any]]]
"""An extra route: receives the JSON body (``{}`` for GET; ``token`` removed) and returns
``(status, json_object)``. Only called after authentication succeeded (unless public)."""

# Headers a handler never sees: they carry the credential, and handlers may log what they get.
_HIDDEN_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})


@frozen_dataclass
class RouteRequest:
    """What a ``with_request=True`` route receives: the whole request minus its credential.

    ``query`` maps each parameter to all its values (``?tag=a&tag=b`` → ``("a", "b")``);
    ``headers`` are lower-cased, without ``Authorization``/``Cookie``; ``body`` is the JSON
    object (``{}`` without a body; a ``token`` member removed).
    """

    method: str
    path: str
    query: Mapping[str, tuple[str, ...]]
    headers: Mapping[str, str]
    body: Mapping[str, Any]


RouteRequestHandler = Callable[[RouteRequest], tuple[int, Mapping[str, Any]]]

LOOPBACK: Final = _constants.LOOPBACK
HEALTH_PATH: Final = "/api/health"
SHUTDOWN_PATH: Final = "/api/shutdown"
_SERVE_POLL_S: Final = 0.05  # how often serve_forever notices shutdown(): keeps stop < 100 ms
_REQUEST_TIMEOUT_S: Final = 10.0  # a client that stalls mid-request cannot pin a thread forever
# At most this many connections are handled at once (one thread and one fd each), so trickling
# clients cannot exhaust threads or fds. When all are taken, the connection that has been
# sending its request the longest is dropped to make room: a client that sends a whole request
# at once (a health check) is always served, however many slow senders are queued behind it.
MAX_CONNECTIONS: Final = 64
# How long the accept loop waits for an evicted connection's slot before closing the new one
# (every slot busy in a route handler, none still reading).
_EVICT_WAIT_S: Final = 0.5
# A whole request (headers and body) must arrive within this many seconds of the accept; a
# slow sender (slowloris) is dropped then, freeing its slot even if every recv makes progress.
REQUEST_DEADLINE_SECONDS: Final[float] = 2.0
_MAX_PACKAGE_VERSION_CHARS: Final = 64


def _utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = _constants.LISTEN_BACKLOG
    # SO_REUSEADDR lets a restarted daemon rebind a port still in TIME_WAIT. Only Linux keeps
    # refusing a port another socket LISTENs on; BSD/macOS would let us bind 127.0.0.1:P beside
    # a wildcard listener and Windows would let two sockets share a live port, so it is off there.
    allow_reuse_address = sys.platform.startswith("linux")
    # Never SO_REUSEPORT (newer Pythons default it on for HTTPServer): two daemons on one port.
    allow_reuse_port = False

    def __init__(self, address: tuple[str, int], owner: DaemonServer) -> None:
        self.owner = owner
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # Connections still receiving their request, oldest first (dicts keep insertion order).
        self._reading: dict[int, socket.socket] = {}
        self._reading_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._evict_oldest_reader()
            if not self._slots.acquire(timeout=_EVICT_WAIT_S):
                logger.debug(
                    "connection cap (%d) reached; closing an excess connection", MAX_CONNECTIONS
                )
                self.shutdown_request(request)
                return
        with self._reading_lock:
            self._reading[id(request)] = request
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.request_read(request)
            self._slots.release()
            raise

    def request_read(self, request: Any) -> None:
        """The request on this connection is fully read (or the connection is done)."""
        with self._reading_lock:
            self._reading.pop(id(request), None)

    def _evict_oldest_reader(self) -> None:
        with self._reading_lock:
            oldest = next(iter(self._reading), None)
            victim = self._reading.pop(oldest) if oldest is not None else None
        if victim is not None:
            logger.debug(
                "connection cap (%d) reached; dropping the slowest sender", MAX_CONNECTIONS
            )
            with contextlib.suppress(OSError):  # its handler reads EOF and frees the slot
                victim.shutdown(socket.SHUT_RDWR)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.request_read(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a full traceback to stderr (the daemon log) whenever a
        # client resets or half-sends a request. One line naming only the exception type: its
        # message could quote request bytes (headers, a token), which logs must never contain.
        exc = sys.exception()
        name = type(exc).__name__ if exc is not None else "unknown error"
        if isinstance(exc, ConnectionError | TimeoutError):
            logger.info("client connection dropped mid-request (%s)", name)
        else:
            logger.warning("request handling failed (%s); the daemon keeps serving", name)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = _REQUEST_TIMEOUT_S

    def setup(self) -> None:
        super().setup()
        # Past the deadline the socket is shut down: a blocked read returns EOF and the handler
        # ends, however slowly-but-steadily the client trickles bytes.
        self._deadline = threading.Timer(REQUEST_DEADLINE_SECONDS, self._drop_slow_sender)
        self._deadline.daemon = True
        self._deadline.start()

    def _drop_slow_sender(self) -> None:
        logger.debug(
            "request deadline (%.1f s) passed; dropping the connection", REQUEST_DEADLINE_SECONDS
        )
        with contextlib.suppress(OSError):  # already closed
            self.connection.shutdown(socket.SHUT_RDWR)

    def _request_read(self) -> None:
        """Fully read: no deadline any more, and never evicted as a slow sender."""
        self._deadline.cancel()
        self.server.request_read(self.connection)

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def version_string(self) -> str:
        return self.server.owner.family.app.server_name  # no Python version banner

    # -- logging: never bodies, headers or query strings (they may carry tokens) --------------
    def log_message(self, format: str, *args: Any) -> None:
        return

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logger.debug("%s %s -> %s", self.command, self._path(), code)

    def log_error(self, format: str, *args: Any) -> None:
        code = args[0] if args and isinstance(args[0], int) else "?"
        logger.debug("rejected malformed request (code %s)", code)

    # -- dispatch ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def _path(self) -> str:
        return self.path.split("?", 1)[0].split("#", 1)[0]

    def _send_json(self, status: int, obj: Mapping[str, Any]) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _host_ok(self) -> bool:
        hosts = self.headers.get_all("Host") or []
        port = self.server.owner.port
        return len(hosts) == 1 and hosts[0] in {f"{LOOPBACK}:{port}", f"localhost:{port}"}

    def _dispatch(self) -> None:
        owner = self.server.owner
        if not self._host_ok():
            self._send_json(403, {"error": "bad_host"})
            return
        if self.headers.get("Origin") is not None:
            self._send_json(403, {"error": "cross_origin"})
            return
        path = self._path()
        methods = owner._methods_for(path)
        if not methods:
            self._send_json(404, {"error": "not_found"})
            return
        if self.command not in methods:
            self._send_json(405, {"error": "method_not_allowed"})
            return
        if (self.command, path) == ("GET", HEALTH_PATH):
            self._request_read()
            self._send_json(200, owner.health_payload().to_dict())
            return
        body = self._read_json_body()
        if body is None:
            return  # the error response is already sent
        self._request_read()  # a slow route handler is not a slow sender
        token = body.pop("token", None)
        public = owner._is_public(self.command, path)
        if not public and not owner._authorized(self._bearer(), token):
            self._send_json(403, {"error": "invalid_token"})
            return
        if (self.command, path) == ("POST", SHUTDOWN_PATH):
            self._send_json(202, {"status": "stopping"})
            owner._begin_shutdown("shutdown_request")
            return
        if not public:
            owner.touch()  # authenticated work resets the idle clock; a public probe does not
        status, result = owner._call_route(self._route_request(path, body))
        self._send_json(status, result)

    def _route_request(self, path: str, body: Mapping[str, Any]) -> RouteRequest:
        query = parse_qs(urlsplit(self.path).query, keep_blank_values=True)
        headers = {
            k.lower(): v for k, v in self.headers.items() if k.lower() not in _HIDDEN_HEADERS
        }
        return RouteRequest(
            self.command, path, {k: tuple(v) for k, v in query.items()}, headers, body
        )

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization")
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def _read_json_body(self) -> dict[str, Any] | None:
        if self.command != "POST":
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            self._send_json(415, {"error": "unsupported_media_type"})
            return None
        if self.headers.get("Transfer-Encoding") is not None:
            self._send_json(411, {"error": "length_required"})
            return None
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0:
            self._send_json(400, {"error": "invalid_payload"})
            return None
        if length > _constants.REQUEST_BODY_MAX_BYTES:
            self._send_json(413, {"error": "payload_too_large"})
            return None
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            self._send_json(400, {"error": "invalid_payload"})
            return None
        return obj


class DaemonServer:
    """A kitty daemon's HTTP face: health, authenticated shutdown, extra routes, self-retirement.

    The socket is bound (``127.0.0.1`` only) in the constructor, so a taken port raises
    ``OSError`` (``EADDRINUSE``) before anything else happens; ``port=0`` picks a free port and
    ``.port`` tells which. ``serve_forever()`` blocks until ``shutdown()`` (from another thread),
    an authenticated ``POST /api/shutdown`` or self-retirement; ``start()`` runs it on a thread.

    ``busy_probe`` must return True while ANY work is queued or running (DID-23): a busy daemon
    never retires, not even when superseded. With ``hard_exit_after_retire`` (the default, right
    for a process that exists to run this daemon) a retiring process that has not exited
    ``RETIRE_GRACE_SECONDS`` after the server stopped is ended with ``os._exit(0)``; apps that keep
    running after ``serve_forever`` returns pass False.
    """

    def __init__(
        self,
        family: DaemonFamily | Family | str,
        port: int,
        root: Path | str,
        *,
        package_version: str | None = None,
        token: str | None = None,
        busy_probe: Callable[[], bool] = lambda: False,
        tick_s: float | None = None,
        idle_limit_s: float | None = None,
        retire_singleton_on_idle: bool = False,
        host: str = LOOPBACK,
        hard_exit_after_retire: bool = True,
        clock: Callable[[], float] = time.monotonic,
        extra_health: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        if host != LOOPBACK:
            raise ValueError(
                f"DaemonServer binds {LOOPBACK} only; refusing host {host!r} "
                "(a daemon reachable from other machines or containers is out of contract)"
            )
        # A bound Family (an app's), or one of kitty's names; ValueError names the known ones.
        self.family: Family = as_family(family)
        if package_version is None:
            package_version = self.family.version
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535 (0 = any free port), got {port!r}")
        if not isinstance(package_version, str) or not (
            0 < len(package_version) <= _MAX_PACKAGE_VERSION_CHARS
        ):
            raise ValueError(
                f"package_version must be a non-empty string of at most "
                f"{_MAX_PACKAGE_VERSION_CHARS} characters, got {package_version!r}"
            )
        self.tick_s = float(_constants.DAEMON_TICK_SECONDS if tick_s is None else tick_s)
        self.idle_limit_s = float(
            _constants.IDLE_RETIREMENT_SECONDS if idle_limit_s is None else idle_limit_s
        )
        if not self.tick_s > 0:
            raise ValueError(f"tick_s must be > 0 seconds, got {tick_s!r}")
        if not self.idle_limit_s >= 0:
            raise ValueError(f"idle_limit_s must be >= 0 seconds, got {idle_limit_s!r}")
        self.root = Path(root).resolve()
        self.package_version = package_version
        self.retire_singleton_on_idle = retire_singleton_on_idle
        self.hard_exit_after_retire = hard_exit_after_retire
        self._token = token or None
        self._busy_probe = busy_probe
        self._extra_health = extra_health
        self._clock = clock
        self._last_activity = clock()
        # (method, path) -> (handler, public, with_request)
        self._routes: dict[
            tuple[str, str], tuple[RouteHandler | RouteRequestHandler, bool, bool]
        ] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False
        self._status = "ok"
        self.retire_decision: RetireDecision | None = None
        self.scope_id = scope_id(self.root)
        self.instance_id = uuid.uuid4().hex
        self.started_at = _utc_now_iso()
        started = process_start_time()
        # Unknown on an exotic platform: fall back to "now" (still > 0 and monotone per process).
        self.process_started_at = started if started is not None else time.time()
        self._httpd = _HTTPServer((LOOPBACK, port), self)
        self.port: int = self._httpd.server_address[1]
        size = len(self.health_payload().to_json())
        if size > _constants.HEALTH_PAYLOAD_MAX_BYTES:
            self._httpd.server_close()
            raise ValueError(
                f"health payload would be {size} bytes (> {_constants.HEALTH_PAYLOAD_MAX_BYTES}); "
                f"use a shorter daemon root than {str(self.root)!r}"
            )

    def __repr__(self) -> str:  # never shows the token
        return (
            f"DaemonServer(family={self.family.name!r}, port={self.port}, root={str(self.root)!r})"
        )

    # -- identity ----------------------------------------------------------------------------
    @property
    def me(self) -> DaemonSelf:
        return DaemonSelf(os.getpid(), self.port, self.process_started_at)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def idle_s(self) -> float:
        return max(0.0, self._clock() - self._last_activity)

    def touch(self) -> None:
        """Mark activity now (resets the idle clock); extra routes do this automatically."""
        self._last_activity = self._clock()

    def busy(self) -> bool:
        try:
            return bool(self._busy_probe())
        except Exception:
            # A broken probe must not make a daemon with work in flight look idle.
            logger.exception("busy_probe raised; treating the daemon as busy")
            return True

    def health_payload(self) -> HealthPayload:
        """The DID-07 payload; it never contains the token, the scope key, env or argv."""
        payload = self._payload()
        if payload.extra and len(payload.to_json()) > _constants.HEALTH_PAYLOAD_MAX_BYTES:
            logger.warning(
                "extra health fields would pass %d bytes; serving health without them",
                _constants.HEALTH_PAYLOAD_MAX_BYTES,
            )
            payload = frozen_replace(payload, extra={})
        return payload

    def _payload(self) -> HealthPayload:
        return HealthPayload(
            schema_version=_constants.HEALTH_SCHEMA_VERSION,
            status=self._status,
            daemon_family=self.family.name,
            protocol_version=self.family.protocol_version,
            package_version=self.package_version,
            singleton_scope_id=self.scope_id,
            daemon_root=str(self.root),
            pid=os.getpid(),
            port=self.port,
            process_started_at=self.process_started_at,
            started_at=self.started_at,
            busy=self.busy(),
            idle_s=round(self.idle_s(), 3),
            instance_id=self.instance_id,
            extra=self._extra(),
        )

    def _extra(self) -> HealthExtra:
        """The app's extra fields, only those its family declares; {} when broken or too big."""
        if self._extra_health is None:
            return {}
        try:
            raw = self._extra_health()
            problem = check_extra(raw)
        except Exception:
            logger.exception("extra_health raised; serving health without extra fields")
            return {}
        if problem is not None:
            logger.warning("extra_health is invalid (%s); serving health without it", problem)
            return {}
        declared = set(self.family.health_fields)
        undeclared = sorted(set(raw) - declared)
        if undeclared:
            # Only declared names go out: an app cannot leak a field by accident.
            logger.warning(
                "extra_health fields %s are not in the family's health_fields", undeclared
            )
        checked = cast(HealthExtra, raw)  # check_extra proved every value a JSON scalar
        return {k: v for k, v in checked.items() if k in declared}

    # -- routes and auth ---------------------------------------------------------------------
    def add_route(
        self,
        method: str,
        path: str,
        handler: RouteHandler | RouteRequestHandler,
        *,
        public: bool = False,
        with_request: bool = False,
    ) -> None:
        """Add a route. Authenticated by default (same token rules as shutdown; each call
        resets the idle clock); ``public=True`` declares it unauthenticated and health-like (no
        token needed, never counts as activity): never put anything secret behind it.
        ``with_request=True`` hands the handler a ``RouteRequest`` (query and headers too)
        instead of the JSON body alone."""
        method = method.upper()
        if method not in {"GET", "POST", "PUT", "DELETE", "PATCH"}:
            raise ValueError(f"unsupported method {method!r}; use GET, POST, PUT, DELETE or PATCH")
        if not path.startswith("/") or "?" in path or "#" in path:
            raise ValueError(f"route path must start with '/' and have no query, got {path!r}")
        if path in {HEALTH_PATH, SHUTDOWN_PATH} or (method, path) in self._routes:
            raise ValueError(f"route {method} {path} is already defined")
        self._routes[(method, path)] = (handler, public, with_request)

    def _is_public(self, method: str, path: str) -> bool:
        route = self._routes.get((method, path))
        return route is not None and route[1]

    def _methods_for(self, path: str) -> set[str]:
        builtin = {HEALTH_PATH: {"GET"}, SHUTDOWN_PATH: {"POST"}}.get(path, set())
        return builtin | {m for (m, p) in self._routes if p == path}

    def _call_route(self, request: RouteRequest) -> tuple[int, Mapping[str, Any]]:
        handler, _, with_request = self._routes[(request.method, request.path)]
        try:
            if with_request:
                return cast(RouteRequestHandler, handler)(request)
            return cast(RouteHandler, handler)(request.body)
        except Exception as exc:
            logger.error("route %s %s failed: %s", request.method, request.path, type(exc).__name__)
            return 500, {"error": "internal_error"}

    def _authorized(self, bearer: str | None, body_token: object) -> bool:
        presented = [t for t in (bearer, body_token) if isinstance(t, str) and t]
        # The scope key is re-read per request: it is the scope's shared secret on disk.
        accepted = [t for t in (self._token, read_scope_key(self.root)) if t]
        ok = False
        for given in presented:
            for secret in accepted:
                # compare every pair (no early exit) in constant time per comparison
                ok |= hmac.compare_digest(given.encode(), secret.encode())
        return ok

    # -- lifecycle ---------------------------------------------------------------------------
    def serve_forever(self) -> None:
        """Serve until stopped; runs the retirement tick on its own daemon thread meanwhile."""
        with self._lock:
            if self._stop.is_set():
                return
            self._serving = True
        ticker = threading.Thread(target=self._tick_loop, name="daemon-retire-tick", daemon=True)
        ticker.start()
        try:
            self._httpd.serve_forever(poll_interval=_SERVE_POLL_S)
        finally:
            with self._lock:
                self._serving = False
            self._stop.set()
            self._stopped.set()

    def start(self) -> threading.Thread:
        """Run ``serve_forever`` on a daemon thread and return it."""
        thread = threading.Thread(target=self.serve_forever, name="daemon-http", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        """Stop serving; blocks until ``serve_forever`` has returned. Never call it from a
        request handler (use ``_begin_shutdown``), and idempotent."""
        with self._lock:
            self._status = "stopping"
            self._stop.set()
            serving = self._serving
        if serving:
            self._httpd.shutdown()

    def close(self) -> None:
        """Stop (if serving) and release the listening socket."""
        self.shutdown()
        self._httpd.server_close()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> DaemonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _begin_shutdown(self, reason: str) -> None:
        """Stop from another thread (a handler thread cannot wait for the loop it runs under)."""
        if not reason.startswith("retire:"):  # retirement already logged its one INFO line
            logger.info("stopping: %s", reason)
        with self._lock:
            self._status = "stopping"
        threading.Thread(target=self.shutdown, name="daemon-stop", daemon=True).start()

    # -- self-retirement (DID-21) ------------------------------------------------------------
    def tick(self) -> RetireDecision:
        """One retirement check. Reads the family state record; never writes or deletes it."""
        state = read_state(self.root, self.family)
        alive = state is not None and process_alive_since(state.pid, state.process_started_at)
        decision = should_retire(
            state,
            self.me,
            self.busy(),
            self.idle_s(),
            recorded_alive=alive,
            idle_limit_s=self.idle_limit_s,
            retire_singleton_on_idle=self.retire_singleton_on_idle,
        )
        logger.debug(
            "tick: %s (%s)", "retire" if decision.retire else "keep", decision.reason.value
        )
        if decision.retire:
            self._retire(decision)
        return decision

    def _retire(self, decision: RetireDecision) -> None:
        self.retire_decision = decision
        logger.info("retiring (%s): pid %s port %s", decision.reason.value, os.getpid(), self.port)
        self._begin_shutdown(f"retire:{decision.reason.value}")
        if self.hard_exit_after_retire:
            grace = _constants.RETIRE_GRACE_SECONDS
            # Last resort: a process wedged in shutdown (stuck non-daemon thread) must still go.
            timer = threading.Timer(grace, os._exit, args=(0,))
            timer.daemon = True
            timer.start()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                decision = self.tick()
            except Exception:
                logger.exception("retirement tick failed; the next tick still runs")
                continue
            if decision.retire:
                return
