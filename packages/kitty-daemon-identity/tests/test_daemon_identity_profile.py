"""The app profile (issue 13): another CLI gets its own names everywhere, kitty keeps its own."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from _didkit import HANG_CAP_S, free_port, request, shutdown
from kitty_daemon_identity import (
    EXIT_PORT_TAKEN,
    KITTY,
    AppProfile,
    ConfigError,
    DaemonFamily,
    DaemonServer,
    Family,
    PortRange,
    RangeConfigError,
    StateRecord,
    as_family,
    daemon_launch,
    family_range,
    marker_args,
    parse_markers,
    read_scope_key,
    read_state,
    serve_daemon,
    spawn_shaped,
    state_path,
    write_state,
)
from kitty_daemon_identity.__main__ import UsageError

ACME = AppProfile(
    "acme",
    families=(
        Family("sync", PortRange(18400, 18450), "2.3.0", entry_signatures=("acme-syncd",)),
        Family("index", PortRange(18450, 18460), "2.3.0", health_fields=("queue_depth",)),
    ),
    login_command="acme auth login",
    doctor_command="acme auth doctor",
)
SYNC = ACME.family("sync")


def test_derived_names_use_the_app_prefix() -> None:
    assert ACME.env_prefix == "ACME"
    assert ACME.home_env == "ACME_HOME"
    assert ACME.root_marker_prefix == "--acme-daemon-root="
    assert ACME.exec_marker_prefix == "--acme-daemon-exec="
    assert ACME.server_name == "acme-daemon"
    assert ACME.port_variable == "ACME_DAEMON_PORT"
    assert SYNC.range_variable == "ACME_SYNC_PORTS"
    assert ACME.login_hint == "log in again: acme auth login"
    assert "kitty" not in repr(ACME)


def test_kitty_profile_reproduces_the_historical_layout(tmp_path: Path) -> None:
    sync, dash = KITTY.family("sync"), KITTY.family("dashboard")
    assert (KITTY.home_env, KITTY.root_marker_prefix) == ("KITTY_HOME", "--kitty-daemon-root=")
    assert (KITTY.server_name, KITTY.port_variable) == ("kitty-daemon", "KITTY_DAEMON_PORT")
    assert (sync.range_variable, dash.range_variable) == (
        "KITTY_SYNC_PORTS",
        "KITTY_DASHBOARD_PORTS",
    )
    assert sync.state_path(tmp_path) == tmp_path / "state.json"
    assert sync.spawn_lock_path(tmp_path) == tmp_path / "spawn.lock"
    assert sync.log_path(tmp_path) == tmp_path / "daemon.log"
    assert dash.state_path(tmp_path) == tmp_path / "dashboard-state.json"
    assert dash.log_path(tmp_path) == tmp_path / "dashboard.log"
    assert KITTY.login_hint == "log in again with your application"
    assert as_family(DaemonFamily.SYNC) is sync


def test_an_app_family_has_its_own_files(tmp_path: Path) -> None:
    assert SYNC.state_path(tmp_path) == tmp_path / "sync-state.json"
    assert SYNC.spawn_lock_path(tmp_path) == tmp_path / "sync-spawn.lock"
    assert SYNC.log_path(tmp_path) == tmp_path / "sync.log"
    assert state_path(tmp_path, SYNC) == tmp_path / "sync-state.json"


def test_home_from_the_app_variable_then_its_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ACME_HOME", raising=False)
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "kitty"))  # not acme's business
    monkeypatch.setenv("HOME", str(tmp_path))
    assert ACME.resolve_home() == tmp_path / ".acme"
    monkeypatch.setenv("ACME_HOME", str(tmp_path / "elsewhere"))
    assert ACME.resolve_home() == tmp_path / "elsewhere"
    assert ACME.daemon_root() == (tmp_path / "elsewhere" / "daemon").resolve()
    monkeypatch.setenv("ACME_HOME", "relative")
    with pytest.raises(ConfigError, match="ACME_HOME") as caught:
        ACME.resolve_home()
    assert "kitty" not in str(caught.value)
    pinned = AppProfile("acme", families=ACME.families, home=tmp_path / "pinned")
    assert pinned.resolve_home() == tmp_path / "pinned"
    fallback = AppProfile("acme", families=ACME.families, home_default=tmp_path / "data")
    monkeypatch.delenv("ACME_HOME")
    assert fallback.resolve_home() == tmp_path / "data"


def test_ranges_overlap_only_within_one_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    # kitty's default sync range is 9400-9450: acme may use it, kitty's ranges are not acme's.
    monkeypatch.setenv("ACME_SYNC_PORTS", "9400-9450")
    assert SYNC.range() == PortRange(9400, 9450)
    assert family_range(SYNC) == PortRange(9400, 9450)
    monkeypatch.setenv("ACME_SYNC_PORTS", "18455-18470")
    with pytest.raises(RangeConfigError, match="ACME_SYNC_PORTS and ACME_INDEX_PORTS"):
        SYNC.range()
    monkeypatch.setenv("ACME_SYNC_PORTS", "nonsense")
    with pytest.raises(RangeConfigError, match="ACME_SYNC_PORTS"):
        SYNC.range()


def test_profile_validation_says_what_is_wrong() -> None:
    fam = Family("sync", PortRange(18400, 18450), "1.0")
    with pytest.raises(ValueError, match="app name"):
        AppProfile("Acme!", families=(fam,))
    with pytest.raises(ValueError, match="at least one"):
        AppProfile("acme", families=())
    with pytest.raises(ValueError, match="repeat"):
        AppProfile("acme", families=(fam, fam))
    with pytest.raises(ValueError, match="overlaps"):
        AppProfile("acme", families=(fam, Family("other", PortRange(18449, 18460), "1.0")))
    with pytest.raises(ValueError, match="version"):
        Family("sync", PortRange(1, 2), "")
    with pytest.raises(ValueError, match="secret"):
        Family("sync", PortRange(1, 2), "1", health_fields=("api_token",))
    with pytest.raises(ValueError, match="not part of an AppProfile"):
        as_family(fam)
    with pytest.raises(ValueError, match="unknown daemon family 'nope' for acme"):
        ACME.family("nope")


def test_one_family_value_may_serve_two_profiles() -> None:
    fam = Family("sync", PortRange(18400, 18450), "1.0")
    one = AppProfile("one", families=(fam,))
    two = AppProfile("two", families=(fam,))
    assert one.family("sync").app is one
    assert two.family("sync").app is two
    assert fam.profile is None


def test_markers_are_the_profiles(tmp_path: Path) -> None:
    argv = ["acme", "daemon", *marker_args(tmp_path, "/usr/bin/python3", profile=ACME)]
    assert argv[2].startswith("--acme-daemon-root=")
    found = parse_markers(argv, profile=ACME)
    assert found.root == str(tmp_path.resolve())
    # kitty's markers are not acme's, and the other way round.
    assert parse_markers(argv).root_present is False
    assert spawn_shaped(argv, (), profile=ACME)
    assert not spawn_shaped(argv, ())
    assert spawn_shaped(["/opt/acme/bin/acme-syncd"], SYNC.entry_signatures, profile=ACME)


def test_daemon_launch_reads_the_app_contract(tmp_path: Path) -> None:
    argv = ["--verbose", f"--acme-daemon-root={tmp_path}", "--acme-daemon-exec=/x"]
    launch = daemon_launch(SYNC, argv, {"ACME_DAEMON_PORT": "18401", "KITTY_DAEMON_PORT": "1"})
    assert (launch.root, launch.port, launch.args) == (tmp_path.resolve(), 18401, ("--verbose",))
    assert launch.family is SYNC
    assert daemon_launch(SYNC, [], {}, root=tmp_path).port is None
    with pytest.raises(UsageError, match="ACME_DAEMON_PORT='0' is invalid"):
        daemon_launch(SYNC, argv, {"ACME_DAEMON_PORT": "0"})
    with pytest.raises(UsageError, match="conflicting --acme-daemon-root="):
        daemon_launch(SYNC, ["--acme-daemon-root=/a", "--acme-daemon-root=/b"], {})


def test_state_record_of_an_app_family(tmp_path: Path) -> None:
    record = StateRecord("sync", 4242, 18401, 1.5e9, "2.3.0", 1, "2026-01-01T00:00:00Z", "i", "s")
    path = write_state(tmp_path, record, SYNC)
    assert path == tmp_path / "sync-state.json"
    assert read_state(tmp_path, SYNC) == record
    assert read_state(tmp_path, DaemonFamily.SYNC) is None  # kitty's state.json is elsewhere
    with pytest.raises(ValueError, match="family"):
        write_state(tmp_path, record, ACME.family("index"))


def test_daemon_server_speaks_for_the_app(tmp_path: Path) -> None:
    server = DaemonServer(SYNC, 0, tmp_path, hard_exit_after_retire=False)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/api/health")
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.getheader("Server") == "acme-daemon"
        assert body["daemon_family"] == "sync"
        assert body["package_version"] == "2.3.0"  # the family's version by default
        assert "kitty" not in repr(server).replace(str(server.root), "")
    finally:
        server.shutdown()
        server.close()


def _health(server: DaemonServer) -> tuple[dict[str, object], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/health")
    raw = conn.getresponse().read()
    conn.close()
    return json.loads(raw), raw


@pytest.mark.parametrize(
    ("extra", "served"),
    [
        ({"queue_depth": 3}, {"queue_depth": 3}),
        ({"queue_depth": 3, "undeclared": "x"}, {"queue_depth": 3}),  # only declared names
        ({"queue_depth": "q" * 257}, None),  # too long a value: no extra at all
        ({"queue_depth": [1]}, None),  # not a scalar
        ({f"f{i}": 1 for i in range(17)}, None),  # too many fields
    ],
)
def test_extra_health_fields_are_declared_small_and_parsed(
    tmp_path: Path, extra: dict[str, object], served: dict[str, object] | None
) -> None:
    from kitty_daemon_identity import HEALTH_KEYS, HealthPayload, parse_health

    server = DaemonServer(
        ACME.family("index"), 0, tmp_path, hard_exit_after_retire=False, extra_health=lambda: extra
    )
    server.start()
    try:
        body, raw = _health(server)
    finally:
        server.shutdown()
        server.close()
    assert body.get("extra") == served
    parsed = parse_health(raw)
    assert isinstance(parsed, HealthPayload)
    assert parsed.extra == (served or {})
    assert set(body) - {"extra"} == HEALTH_KEYS


def test_extra_health_never_breaks_health(tmp_path: Path) -> None:
    def boom() -> dict[str, object]:
        raise RuntimeError("app bug")

    big = {f"f{i}": "v" * 200 for i in range(12)}  # valid, but the payload would pass 2048 bytes
    index = AppProfile(
        "acme", families=(Family("index", PortRange(1, 2), "1", health_fields=tuple(big)),)
    ).family("index")
    for source in (boom, lambda: big):
        server = DaemonServer(index, 0, tmp_path, hard_exit_after_retire=False, extra_health=source)
        server.start()
        try:
            body, _ = _health(server)
        finally:
            server.shutdown()
            server.close()
        assert "extra" not in body
        assert body["status"] == "ok"


def test_a_malformed_extra_is_ignored_like_an_unknown_key(tmp_path: Path) -> None:
    from kitty_daemon_identity import HealthPayload, parse_health

    server = DaemonServer(SYNC, 0, tmp_path, hard_exit_after_retire=False)
    try:
        good = server.health_payload().to_dict()
    finally:
        server.close()
    assert "extra" not in good  # kitty's and an app's payload without extras: the DID-07 keys
    bad: object
    for bad in ([], {"Bad-Name": 1}, {"x": [1]}):
        parsed = parse_health(json.dumps({**good, "extra": bad}).encode())
        assert isinstance(parsed, HealthPayload)
        assert parsed.extra == {}
    parsed = parse_health(json.dumps({**good, "extra": {"queue_depth": 2}}).encode())
    assert isinstance(parsed, HealthPayload)
    assert parsed.extra == {"queue_depth": 2}


def _serve_in_thread(argv: list[str], results: list[int]) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: results.append(
            serve_daemon(SYNC, argv=argv, setup=_ping, hard_exit_after_retire=False)
        ),
        daemon=True,
    )
    thread.start()
    return thread


def _ping(server: DaemonServer) -> None:
    server.add_route("GET", "/api/ping", lambda body: (200, {"pong": True}))


def test_serve_daemon_is_a_whole_daemon_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("ACME_DAEMON_PORT", str(port))
    root = tmp_path / "daemon"
    results: list[int] = []
    thread = _serve_in_thread([f"--acme-daemon-root={root}"], results)
    deadline = time.monotonic() + HANG_CAP_S
    while True:
        try:
            health = request(port, "GET", "/api/health", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline, "serve_daemon never served"
            time.sleep(0.01)
    assert health.json()["daemon_root"] == str(root.resolve())
    key = read_scope_key(root)  # serve_daemon ensured the scope key
    assert key is not None
    pong = request(port, "GET", "/api/ping", headers={"Authorization": f"Bearer {key}"})
    assert pong.json() == {"pong": True}
    assert shutdown(port, key).status == 202
    thread.join(HANG_CAP_S)
    assert results == [0]


def test_serve_daemon_exit_codes_follow_the_spawn_contract(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("ACME_DAEMON_PORT", str(taken.getsockname()[1]))
        assert serve_daemon(SYNC, argv=[f"--acme-daemon-root={tmp_path}"]) == EXIT_PORT_TAKEN
    assert "acme-daemon: port" in capsys.readouterr().err
    conflicting = ["--acme-daemon-root=/a", "--acme-daemon-root=/b"]
    assert serve_daemon(SYNC, argv=conflicting) == 2
    err = capsys.readouterr().err
    assert err.startswith("acme-daemon: error: conflicting")
    assert "kitty" not in err
