"""DaemonServer over real loopback sockets (DID-17..DID-21)."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from _didkit import HANG_CAP_S, ProcSet, free_port, request, shutdown
from kitty_daemon_identity import (
    HEALTH_KEYS,
    DaemonFamily,
    DaemonServer,
    HealthPayload,
    RetireReason,
    RouteRequest,
    StateRecord,
    _constants,
    ensure_scope_key,
    parse_health,
    process_start_time,
    scope_id,
    write_state,
)

TOKEN = "instance-token-d3adb33f-never-in-payload"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_server(root: Path, **kw: Any) -> DaemonServer:
    kw.setdefault("package_version", "0.1.0")
    kw.setdefault("hard_exit_after_retire", False)
    last: OSError | None = None
    for _ in range(20):  # another test run may grab a port between probe and bind
        try:
            return DaemonServer(kw.pop("family", DaemonFamily.SYNC), free_port(), root, **kw)
        except OSError as exc:
            last = exc
    raise AssertionError(f"could not bind a test port: {last}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(root: Path, clock: FakeClock) -> Iterator[DaemonServer]:
    ensure_scope_key(root)
    srv = make_server(root, token=TOKEN, clock=clock)
    thread = srv.start()
    try:
        yield srv
    finally:
        srv.close()
        thread.join(timeout=HANG_CAP_S)
        assert not thread.is_alive()


def json_post(port: int, path: str, obj: object, headers: Mapping[str, str] | None = None) -> Any:
    return request(
        port,
        "POST",
        path,
        headers={"Content-Type": "application/json", **(headers or {})},
        body=json.dumps(obj).encode(),
    )


# ---- health ---------------------------------------------------------------------------------


def test_health_payload_fields_and_headers(server: DaemonServer, root: Path) -> None:
    resp = request(server.port, "GET", "/api/health")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["cache-control"] == "no-store"
    assert not [h for h in resp.headers if h.startswith("access-control-")]
    body = resp.json()
    assert set(body) == HEALTH_KEYS  # exactly the DID-07 key set: nothing else leaks out
    assert len(resp.body) <= _constants.HEALTH_PAYLOAD_MAX_BYTES
    assert isinstance(parse_health(resp.body), HealthPayload)
    assert body["schema_version"] == 2
    assert body["status"] == "ok"
    assert body["daemon_family"] == "sync"
    assert body["protocol_version"] == 1
    assert body["package_version"] == "0.1.0"
    assert body["singleton_scope_id"] == scope_id(root)
    assert body["daemon_root"] == str(root)
    assert body["pid"] == os.getpid()
    assert body["port"] == server.port
    assert abs(body["process_started_at"] - (process_start_time() or 0)) <= 1.0
    assert body["busy"] is False
    assert len(body["instance_id"]) == 32
    assert body["started_at"].endswith("Z")


def test_health_never_contains_secrets(server: DaemonServer, root: Path) -> None:
    key = ensure_scope_key(root)
    raw = request(server.port, "GET", "/api/health").body.decode()
    for secret in (TOKEN, key):
        assert secret not in raw
    values = [str(v) for v in json.loads(raw).values()]
    assert TOKEN not in values
    assert key not in values
    assert TOKEN not in repr(server)


def test_health_does_not_count_as_activity(server: DaemonServer, clock: FakeClock) -> None:
    clock.now += 50
    assert request(server.port, "GET", "/api/health").json()["idle_s"] == 50.0
    clock.now += 25
    assert request(server.port, "GET", "/api/health").json()["idle_s"] == 75.0


def test_localhost_host_is_accepted(server: DaemonServer) -> None:
    resp = request(server.port, "GET", "/api/health", host=f"localhost:{server.port}")
    assert resp.status == 200


# ---- host / origin ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [None, "evil.example:{port}", "127.0.0.1", "127.0.0.1:1", "localhost", "[::1]:{port}"],
)
def test_bad_host_is_refused(server: DaemonServer, host: str | None) -> None:
    value = None if host is None else host.format(port=server.port)
    resp = request(server.port, "GET", "/api/health", host=value)
    assert resp.status == 403
    assert resp.json() == {"error": "bad_host"}


def test_duplicate_host_header_is_refused(server: DaemonServer) -> None:
    resp = request(server.port, "GET", "/api/health", headers={"Host": f"127.0.0.1:{server.port}"})
    assert resp.status == 403


def test_rebinding_shutdown_is_refused_even_with_the_key(server: DaemonServer, root: Path) -> None:
    key = ensure_scope_key(root)
    resp = shutdown(server.port, key, host=f"attacker.example:{server.port}")
    assert resp.status == 403
    assert request(server.port, "GET", "/api/health").status == 200  # still running


@pytest.mark.parametrize("path", ["/api/health", "/api/shutdown"])
def test_any_origin_is_refused(server: DaemonServer, path: str) -> None:
    method = "GET" if path == "/api/health" else "POST"
    resp = request(server.port, method, path, headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert resp.status == 403
    assert resp.json() == {"error": "cross_origin"}
    assert not [h for h in resp.headers if h.startswith("access-control-")]


# ---- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("GET", "/api/health/", 404),
        ("POST", "/api/health", 405),
        ("GET", "/api/shutdown", 405),
        ("DELETE", "/api/health", 405),
        ("PUT", "/api/shutdown", 405),
        ("OPTIONS", "/api/health", 405),
    ],
)
def test_unknown_path_and_wrong_method(
    server: DaemonServer, method: str, path: str, status: int
) -> None:
    resp = request(server.port, method, path)
    assert resp.status == status


def test_head_gets_headers_only(server: DaemonServer) -> None:
    resp = request(server.port, "HEAD", "/api/health")
    assert resp.status == 405
    assert resp.body == b""


def test_query_string_is_ignored_for_routing(server: DaemonServer) -> None:
    assert request(server.port, "GET", "/api/health?x=1").status == 200


# ---- shutdown auth ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {}),
        ({"Authorization": "Bearer wrong"}, {}),
        ({"Authorization": f"Basic {TOKEN}"}, {}),
        ({}, {"token": "wrong"}),
        ({}, {"token": 12345}),
        ({"Authorization": "Bearer "}, {}),
        ({"Authorization": "Bearer ünïcode"}, {"token": "ünïcode"}),
    ],
)
def test_shutdown_refused_without_a_valid_token(
    server: DaemonServer, headers: dict[str, str], body: dict[str, object]
) -> None:
    resp = json_post(server.port, "/api/shutdown", body, headers)
    assert resp.status == 403
    assert resp.json() == {"error": "invalid_token"}
    assert request(server.port, "GET", "/api/health").json()["status"] == "ok"


@pytest.mark.parametrize("where", ["bearer", "body"])
def test_shutdown_with_instance_token(server: DaemonServer, where: str) -> None:
    if where == "bearer":
        resp = json_post(server.port, "/api/shutdown", {}, {"Authorization": f"Bearer {TOKEN}"})
    else:
        resp = json_post(server.port, "/api/shutdown", {"token": TOKEN})
    assert resp.status == 202
    assert resp.json() == {"status": "stopping"}
    assert server.wait_stopped(HANG_CAP_S)


def test_shutdown_with_scope_key_reread_per_request(server: DaemonServer, root: Path) -> None:
    old = ensure_scope_key(root)
    (root / "scope.key").unlink()
    new = ensure_scope_key(root)  # an operator rotated the key: the old one stops working
    assert shutdown(server.port, old).status == 403
    assert shutdown(server.port, new).status == 202
    assert server.wait_stopped(HANG_CAP_S)


def test_tokenless_server_accepts_only_the_scope_key(root: Path) -> None:
    key = ensure_scope_key(root)
    with make_server(root) as srv:
        thread = srv.start()
        assert shutdown(srv.port, "").status == 403
        assert shutdown(srv.port, key).status == 202
        thread.join(timeout=HANG_CAP_S)
        assert not thread.is_alive()


def test_insecure_scope_key_is_not_accepted(root: Path) -> None:
    key = ensure_scope_key(root)
    (root / "scope.key").chmod(0o644)
    with make_server(root) as srv:
        srv.start()
        assert shutdown(srv.port, key).status == 403


@pytest.mark.parametrize(
    ("headers", "body", "status", "error"),
    [
        ({"Content-Type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        ({}, b"{}", 415, "unsupported_media_type"),
        ({"Content-Type": "application/json"}, b"{" + b" " * 5000 + b"}", 413, "payload_too_large"),
        ({"Content-Type": "application/json"}, b"{not json", 400, "invalid_payload"),
        ({"Content-Type": "application/json"}, b"[1]", 400, "invalid_payload"),
        ({"Content-Type": "application/json"}, b"\xff\xfe", 400, "invalid_payload"),
    ],
)
def test_body_limits(
    server: DaemonServer, headers: dict[str, str], body: bytes, status: int, error: str
) -> None:
    resp = request(
        server.port,
        "POST",
        "/api/shutdown",
        headers={"Authorization": f"Bearer {TOKEN}", **headers},
        body=body,
    )
    assert resp.status == status
    assert resp.json() == {"error": error}
    assert request(server.port, "GET", "/api/health").json()["status"] == "ok"


def test_content_type_with_charset_is_json(server: DaemonServer) -> None:
    resp = request(
        server.port,
        "POST",
        "/api/shutdown",
        headers={"Content-Type": "application/json; charset=utf-8"},
        body=json.dumps({"token": TOKEN}).encode(),
    )
    assert resp.status == 202


def test_chunked_and_bad_length_are_refused(server: DaemonServer) -> None:
    base = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    chunked = request(
        server.port, "POST", "/api/shutdown", headers={**base, "Transfer-Encoding": "chunked"}
    )
    assert chunked.status == 411
    bad = request(server.port, "POST", "/api/shutdown", headers={**base, "Content-Length": "x"})
    assert bad.status == 400


def test_logs_never_contain_bodies_headers_or_queries(
    server: DaemonServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kitty_daemon_identity")
    request(server.port, "GET", f"/api/health?token={TOKEN}")
    request(server.port, "GET", "/nope", headers={"Authorization": f"Bearer {TOKEN}"})
    json_post(server.port, "/api/shutdown", {"token": "wrong-" + TOKEN})
    request(server.port, "BREW", f"/x?{TOKEN}")  # unsupported method: stdlib error path
    json_post(server.port, "/api/shutdown", {"token": TOKEN})
    assert server.wait_stopped(HANG_CAP_S)
    assert "/api/health" in caplog.text  # requests ARE logged ...
    assert TOKEN not in caplog.text  # ... without secrets


def _reset_mid_body(port: int) -> None:
    """Send the head of an authenticated shutdown, half the body, then reset (RST) the socket."""
    head = (
        f"POST /api/shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Length: 200\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_CAP_S) as sock:
        sock.sendall(head.encode() + b'{"token": "' + TOKEN.encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_client_reset_logs_one_line_and_no_traceback(
    server: DaemonServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="kitty_daemon_identity")
    _reset_mid_body(server.port)
    deadline = time.monotonic() + HANG_CAP_S
    while "client connection dropped" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)  # bounded poll for the handler thread's log line (hang cap only)
    dropped = [r for r in caplog.records if "client connection dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert "\n" not in dropped[0].getMessage()
    assert TOKEN not in caplog.text
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert TOKEN not in err
    # the daemon still serves
    assert request(server.port, "GET", "/api/health").status == 200


def test_unexpected_handler_error_is_one_warning_line(
    server: DaemonServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="kitty_daemon_identity")
    try:
        raise UnicodeDecodeError("utf-8", TOKEN.encode(), 0, 1, "request bytes quoted here")
    except UnicodeDecodeError:
        server._httpd.handle_error(None, ("127.0.0.1", 1))
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "UnicodeDecodeError" in caplog.text
    assert TOKEN not in caplog.text
    assert "Traceback" not in capfd.readouterr().err


# ---- extra routes -----------------------------------------------------------------------------


def test_extra_route_is_authenticated_and_resets_idle(
    server: DaemonServer, clock: FakeClock
) -> None:
    seen: list[Mapping[str, Any]] = []

    def handler(body: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
        seen.append(dict(body))
        return 200, {"echo": body.get("x")}

    server.add_route("post", "/api/echo", handler)
    clock.now += 100
    assert json_post(server.port, "/api/echo", {"x": 1}).status == 403
    assert request(server.port, "GET", "/api/health").json()["idle_s"] == 100.0
    resp = json_post(server.port, "/api/echo", {"x": 2, "token": TOKEN})
    assert resp.status == 200
    assert resp.json() == {"echo": 2}
    assert seen == [{"x": 2}]  # the token is removed before the handler sees the body
    assert request(server.port, "GET", "/api/health").json()["idle_s"] == 0.0
    assert request(server.port, "GET", "/api/echo").status == 405


def test_get_route_uses_bearer(server: DaemonServer) -> None:
    server.add_route("GET", "/api/stats", lambda body: (200, {"n": len(body)}))
    assert request(server.port, "GET", "/api/stats").status == 403
    ok = request(server.port, "GET", "/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status == 200
    assert ok.json() == {"n": 0}


def test_route_with_request_sees_query_and_headers_but_never_the_credential(
    server: DaemonServer,
) -> None:
    seen: list[RouteRequest] = []

    def handler(req: RouteRequest) -> tuple[int, Mapping[str, Any]]:
        seen.append(req)
        return 200, {"tags": list(req.query.get("tag", ())), "trace": req.headers.get("x-trace")}

    server.add_route("GET", "/api/items", handler, with_request=True)
    resp = request(
        server.port,
        "GET",
        "/api/items?tag=a&tag=b&empty=",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Trace": "t-1", "Cookie": "c=1"},
    )
    assert resp.status == 200
    assert resp.json() == {"tags": ["a", "b"], "trace": "t-1"}
    (req,) = seen
    assert (req.method, req.path, req.query["empty"]) == ("GET", "/api/items", ("",))
    assert "authorization" not in req.headers
    assert "cookie" not in req.headers
    assert TOKEN not in repr(req)


def test_public_route_needs_no_token_and_is_not_activity(
    server: DaemonServer, clock: FakeClock
) -> None:
    server.add_route("GET", "/api/version", lambda body: (200, {"v": 1}), public=True)
    server.add_route("GET", "/api/private", lambda body: (200, {}))
    clock.now += 50
    resp = request(server.port, "GET", "/api/version")
    assert (resp.status, resp.json()) == (200, {"v": 1})
    assert request(server.port, "GET", "/api/health").json()["idle_s"] == 50.0
    assert request(server.port, "GET", "/api/private").status == 403  # default stays private


def test_failing_route_is_a_500_without_details(
    server: DaemonServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(body: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]]:
        raise RuntimeError(f"secret detail {TOKEN}")

    server.add_route("POST", "/api/broken", broken)
    resp = json_post(server.port, "/api/broken", {"token": TOKEN})
    assert resp.status == 500
    assert resp.json() == {"error": "internal_error"}
    assert "RuntimeError" in caplog.text
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/health"),
        ("POST", "/api/shutdown"),
        ("TRACE", "/x"),
        ("GET", "x"),
        ("GET", "/a?b"),
    ],
)
def test_add_route_validation(server: DaemonServer, method: str, path: str) -> None:
    with pytest.raises(ValueError, match=r"route|method"):
        server.add_route(method, path, lambda body: (200, {}))


def test_duplicate_route_is_refused(server: DaemonServer) -> None:
    server.add_route("POST", "/api/x", lambda body: (200, {}))
    with pytest.raises(ValueError, match="already defined"):
        server.add_route("POST", "/api/x", lambda body: (200, {}))


# ---- construction -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"host": "0.0.0.0"}, "127.0.0.1 only"),
        ({"host": "::1"}, "127.0.0.1 only"),
        ({"family": "other"}, "unknown daemon family"),
        ({"port": 70000}, "port must be"),
        ({"port": True}, "port must be"),
        ({"package_version": ""}, "package_version"),
        ({"package_version": "v" * 65}, "package_version"),
        ({"tick_s": 0}, "tick_s"),
        ({"idle_limit_s": -1}, "idle_limit_s"),
    ],
)
def test_constructor_validation(root: Path, kw: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"family": DaemonFamily.SYNC, "port": 0, "package_version": "1"}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        DaemonServer(args.pop("family"), args.pop("port"), root, **args)


def test_taken_port_raises_oserror(server: DaemonServer, root: Path) -> None:
    with pytest.raises(OSError):  # noqa: PT011 - EADDRINUSE's errno differs per OS
        DaemonServer(DaemonFamily.SYNC, server.port, root, package_version="1")


def test_backlog_and_loopback_bind(server: DaemonServer) -> None:
    assert server._httpd.request_queue_size >= 128
    assert server._httpd.server_address[0] == "127.0.0.1"
    assert server.base_url == f"http://127.0.0.1:{server.port}"


def test_overlong_root_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 200) / ("g" * 200)
    with pytest.raises(ValueError, match="health payload would be"):
        DaemonServer(DaemonFamily.SYNC, 0, deep, package_version="1")


def test_shutdown_before_serving_returns_and_serve_then_returns(root: Path) -> None:
    srv = make_server(root)
    srv.shutdown()  # must not block although serve_forever never ran
    srv.serve_forever()  # returns at once: the server was already told to stop
    srv.close()


def test_broken_busy_probe_counts_as_busy(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    def probe() -> bool:
        raise RuntimeError("probe bug")

    with make_server(root, busy_probe=probe) as srv:
        assert srv.health_payload().busy is True
    assert "busy_probe raised" in caplog.text


def test_explicit_shutdown_stops_within_the_hang_cap(root: Path) -> None:
    srv = make_server(root)
    thread = srv.start()
    assert request(srv.port, "GET", "/api/health").status == 200
    srv.shutdown()
    thread.join(timeout=HANG_CAP_S)
    assert not thread.is_alive()
    srv.close()


# ---- self-retirement tick (DID-21) --------------------------------------------------------------


def record_for(pid: int, port: int, started: float, root: Path) -> StateRecord:
    return StateRecord(
        family=DaemonFamily.SYNC,
        pid=pid,
        port=port,
        process_started_at=started,
        package_version="0.1.0",
        protocol_version=1,
        started_at="2025-05-01T10:00:01Z",
        instance_id="b" * 32,
        scope_id=scope_id(root),
    )


def test_tick_retires_when_superseded_by_a_live_recorded_process(
    root: Path, procs: ProcSet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kitty_daemon_identity")
    other = procs.sleeper()
    started = process_start_time(other.pid)
    assert started is not None
    path = write_state(root, record_for(other.pid, 20199, started, root))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    srv = make_server(root)
    thread = srv.start()
    decision = srv.tick()
    assert decision.retire
    assert decision.reason is RetireReason.SUPERSEDED
    thread.join(timeout=HANG_CAP_S)
    assert not thread.is_alive()
    srv.close()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before  # never written by a daemon
    assert "retiring (superseded)" in caplog.text


@pytest.mark.parametrize("case", ["dead_pid", "reused_pid", "busy", "me"])
def test_tick_keeps_running(root: Path, procs: ProcSet, case: str) -> None:
    other = procs.sleeper()
    started = process_start_time(other.pid)
    assert started is not None
    busy = False
    srv_holder: list[DaemonServer] = []
    if case == "dead_pid":
        assert other.stdin is not None
        other.stdin.close()
        other.wait(timeout=HANG_CAP_S)
        write_state(root, record_for(other.pid, 20199, started, root))
    elif case == "reused_pid":  # same pid alive, but a different process start time
        write_state(root, record_for(other.pid, 20199, started - 100.0, root))
    elif case == "busy":
        write_state(root, record_for(other.pid, 20199, started, root))
        busy = True
    srv = make_server(root, busy_probe=lambda: busy, idle_limit_s=10_000)
    srv_holder.append(srv)
    if case == "me":
        write_state(root, record_for(os.getpid(), srv.port, srv.process_started_at, root))
    with srv:
        decision = srv.tick()
        assert not decision.retire
        expected = RetireReason.BUSY if busy else RetireReason.ACTIVE
        assert decision.reason is expected
        assert srv.retire_decision is None


def test_idle_retirement_uses_the_clock(root: Path, clock: FakeClock) -> None:
    with make_server(root, clock=clock, idle_limit_s=60) as srv:
        assert not srv.tick().retire
        clock.now += 61
        assert srv.tick().reason is RetireReason.IDLE_TIMEOUT


def test_singleton_idle_retirement_only_when_configured(root: Path, clock: FakeClock) -> None:
    for configured, expected in (
        (False, RetireReason.ACTIVE),
        (True, RetireReason.IDLE_TIMEOUT_SINGLETON),
    ):
        srv = make_server(root, clock=clock, idle_limit_s=60, retire_singleton_on_idle=configured)
        with srv:
            write_state(root, record_for(os.getpid(), srv.port, srv.process_started_at, root))
            clock.now += 61
            assert srv.tick().reason is expected


def test_tick_thread_survives_an_exception(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0
    done = threading.Event()

    def flaky(root_: Path, family: DaemonFamily) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk on fire")
        done.set()

    monkeypatch.setattr("kitty_daemon_identity._server.read_state", flaky)
    srv = make_server(root, tick_s=0.01)
    thread = srv.start()
    try:
        assert done.wait(HANG_CAP_S)  # a later tick ran after the failing one
    finally:
        srv.close()
        thread.join(timeout=HANG_CAP_S)
    assert "retirement tick failed" in caplog.text


def test_tick_thread_retires_the_serving_loop(root: Path, procs: ProcSet) -> None:
    other = procs.sleeper()
    started = process_start_time(other.pid)
    assert started is not None
    write_state(root, record_for(other.pid, 20199, started, root))
    srv = make_server(root, tick_s=0.01)
    thread = srv.start()
    thread.join(timeout=HANG_CAP_S)
    assert not thread.is_alive()
    assert srv.retire_decision is not None
    assert srv.retire_decision.reason is RetireReason.SUPERSEDED
    srv.close()


def test_hard_exit_after_grace(
    root: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    exited = threading.Event()
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(_constants, "RETIRE_GRACE_SECONDS", 0.01)
    with make_server(root, clock=clock, idle_limit_s=1, hard_exit_after_retire=True) as srv:
        clock.now += 5
        assert srv.tick().retire
        assert exited.wait(HANG_CAP_S)
    assert codes == [0]


def test_patched_tick_constant_is_the_default(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_constants, "DAEMON_TICK_SECONDS", 0.5)
    monkeypatch.setattr(_constants, "IDLE_RETIREMENT_SECONDS", 7.0)
    with make_server(root) as srv:
        assert srv.tick_s == 0.5
        assert srv.idle_limit_s == 7.0
