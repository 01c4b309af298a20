"""The pure classifier: one case per DID-12 row, range boundaries (DID-16), invariants (DID-15)."""

from __future__ import annotations

import json
from dataclasses import replace
from enum import Enum
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitty_daemon_identity import (
    DASHBOARD_RANGE,
    KITTY,
    SYNC_RANGE,
    ArgvError,
    CleanupClass,
    ConnectState,
    DaemonFamily,
    DaemonIdentityRecord,
    Foreground,
    HealthOutcome,
    HealthParseError,
    HealthPayload,
    HealthProbe,
    IdentitySource,
    ListenerObservation,
    OtherRoot,
    PidError,
    SkipReason,
    StateRecord,
    classify,
    load_other_root,
    parse_health,
    write_state,
)

ROOT = Path("/home/u/.kitty/daemon")
SCOPE = f"{ROOT}#3b9f0c7a5d12e4f8"
PY = "/usr/bin/python3"
PORT = 9401
PID = 5150
STARTED = 1746093600.52
ARGV = ("python3", "-m", "kitty_daemon_identity", f"--kitty-daemon-root={ROOT}",
        f"--kitty-daemon-exec={PY}")  # fmt: skip


def payload(**changes: object) -> HealthPayload:
    base = HealthPayload(
        schema_version=2,
        status="ok",
        daemon_family="sync",
        protocol_version=1,
        package_version="0.1.0",
        singleton_scope_id=SCOPE,
        daemon_root=str(ROOT),
        pid=PID,
        port=PORT,
        process_started_at=STARTED,
        started_at="2025-05-01T10:00:01Z",
        busy=False,
        idle_s=3.0,
        instance_id="6f1d9c0e2b7a4c58a9e3d1f0b2c4a6e8",
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # test helper: typed by callers


OK = HealthProbe(HealthOutcome.OK, 200, payload(), True, None, 1.0, "sync")


def obs(**changes: object) -> ListenerObservation:
    base = ListenerObservation(
        family=DaemonFamily.SYNC,
        port=PORT,
        connect=ConnectState.OPEN,
        pid=PID,
        pid_error=None,
        argv=ARGV,
        argv_error=None,
        create_time=STARTED + 0.3,
        exe=PY,
        health=OK,
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # test helper: typed by callers


def record(pid: int = 7000, port: int = 9410, started: float = 1.0e9) -> StateRecord:
    return StateRecord(
        family=DaemonFamily.SYNC,
        pid=pid,
        port=port,
        process_started_at=started,
        package_version="0.1.0",
        protocol_version=1,
        started_at="2025-05-01T10:00:01Z",
        instance_id="a" * 32,
        scope_id=SCOPE,
    )


def fg(**changes: object) -> Foreground:
    base = Foreground(
        family=DaemonFamily.SYNC,
        range=SYNC_RANGE,
        daemon_root=ROOT,
        scope_id=SCOPE,
        executable=PY,
        package_version="0.1.0",
        protocol_version=1,
        singleton=record(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # test helper: typed by callers


NEVER, OPER, SAFE = (
    CleanupClass.NEVER_TOUCH,
    CleanupClass.OPERATOR_REQUIRED,
    CleanupClass.SAFE_AUTO,
)
S, SRC = SkipReason, IdentitySource
TIMEOUT = HealthProbe(HealthOutcome.TIMEOUT, error="timeout")
OTHER_FAMILY_INVALID = HealthProbe(
    HealthOutcome.INVALID, 200, None, True, "missing_field:pid", 1.0, "dashboard"
)

# (row, id, observation, foreground, class, reason, source)
ROWS = [
    (1, "out_of_range", obs(port=9450), fg(), NEVER, S.OUT_OF_RANGE, SRC.NONE),
    (2, "other_family", obs(health=replace(OK, payload=payload(daemon_family="dashboard"))),
     fg(), NEVER, S.OTHER_FAMILY, SRC.HEALTH_SELF_REPORT),
    (2, "other_family_invalid_schema", obs(health=OTHER_FAMILY_INVALID), fg(), NEVER,
     S.OTHER_FAMILY, SRC.HEALTH_SELF_REPORT),
    (3, "third_party_http", obs(argv=("nginx",), health=HealthProbe(HealthOutcome.HTTP_ERROR, 404)),
     fg(), NEVER, S.THIRD_PARTY, SRC.NONE),
    (3, "not_kitty_no_http", obs(argv=("redis",), health=HealthProbe(HealthOutcome.NON_HTTP)),
     fg(), NEVER, S.NOT_KITTY, SRC.NONE),
    (4, "recorded_singleton", obs(), fg(singleton=record(PID, PORT, STARTED)), NEVER,
     S.IS_RECORDED_SINGLETON, SRC.STATE_RECORD),
    (4, "recorded_singleton_pid_unknown", obs(pid=None, pid_error=PidError.ACCESS_DENIED, argv=None,
     create_time=None), fg(singleton=record(PID, PORT, STARTED)), NEVER, S.IS_RECORDED_SINGLETON,
     SRC.STATE_RECORD),
    (5, "missing_pid", obs(pid=None, pid_error=PidError.ACCESS_DENIED, argv=None, create_time=None),
     fg(), OPER, S.MISSING_PID, SRC.HEALTH_SELF_REPORT),
    (6, "argv_unreadable", obs(argv=None, argv_error=ArgvError.ACCESS_DENIED), fg(), OPER,
     S.ARGV_UNREADABLE, SRC.HEALTH_SELF_REPORT),
    (7, "kitty_json_from_stranger", obs(argv=("node", "server.js")), fg(), NEVER, S.THIRD_PARTY,
     SRC.NONE),
    (8, "pre_marker", obs(argv=("python3", "-m", "kitty_daemon_identity")), fg(), OPER,
     S.PRE_MARKER, SRC.NONE),
    (9, "cross_root", obs(argv=("kitty-daemon", "--kitty-daemon-root=/other/daemon")), fg(), OPER,
     S.CROSS_ROOT, SRC.CMDLINE_MARKER),
    (9, "empty_root_marker", obs(argv=("kitty-daemon", "--kitty-daemon-root=")), fg(), OPER,
     S.CROSS_ROOT, SRC.CMDLINE_MARKER),
    (9, "conflicting_root_markers", obs(argv=(*ARGV, "--kitty-daemon-root=/x")), fg(), OPER,
     S.CROSS_ROOT, SRC.CMDLINE_MARKER),
    (10, "unresponsive_timeout", obs(health=TIMEOUT), fg(), OPER, S.UNRESPONSIVE,
     SRC.CMDLINE_MARKER),
    (10, "unresponsive_suspect", obs(connect=ConnectState.SUSPECT, health=TIMEOUT), fg(), OPER,
     S.UNRESPONSIVE, SRC.CMDLINE_MARKER),
    (10, "unresponsive_invalid", obs(health=replace(OTHER_FAMILY_INVALID, claimed_family="sync")),
     fg(), OPER, S.UNRESPONSIVE, SRC.CMDLINE_MARKER),
    (11, "other_namespace", obs(health=replace(OK, payload=payload(singleton_scope_id="/r#ff"))),
     fg(), OPER, S.OTHER_NAMESPACE, SRC.HEALTH_SELF_REPORT),
    (12, "pid_mismatch", obs(health=replace(OK, payload=payload(pid=PID + 1))), fg(), OPER,
     S.PID_PORT_MISMATCH, SRC.HEALTH_SELF_REPORT),
    (12, "port_mismatch", obs(health=replace(OK, payload=payload(port=PORT + 1))), fg(), OPER,
     S.PID_PORT_MISMATCH, SRC.HEALTH_SELF_REPORT),
    (13, "create_time_mismatch", obs(create_time=STARTED + 1.5), fg(), OPER,
     S.CREATE_TIME_MISMATCH, SRC.HEALTH_SELF_REPORT),
    (13, "create_time_unknown", obs(create_time=None), fg(), OPER, S.CREATE_TIME_MISMATCH,
     SRC.HEALTH_SELF_REPORT),
    (14, "safe_auto", obs(), fg(), SAFE, None, SRC.HEALTH_SELF_REPORT),
    (14, "safe_auto_stale_other_exe", obs(exe="/opt/py3.13", health=replace(OK, payload=payload(
     package_version="3.2.2", protocol_version=2))), fg(), SAFE, None, SRC.HEALTH_SELF_REPORT),
]  # fmt: skip


@pytest.mark.parametrize(
    ("observation", "foreground", "cls", "reason", "source"),
    [r[2:] for r in ROWS],
    ids=[f"row{r[0]}-{r[1]}" for r in ROWS],
)
def test_decision_table(
    observation: ListenerObservation,
    foreground: Foreground,
    cls: CleanupClass,
    reason: SkipReason | None,
    source: IdentitySource,
) -> None:
    got = classify(observation, foreground)
    assert (got.cleanup_class, got.skip_reason, got.identity_source) == (cls, reason, source)


def test_every_row_and_reason_is_covered() -> None:
    assert {r[0] for r in ROWS} == set(range(1, 15))
    assert {r[5] for r in ROWS} - {None} == set(SkipReason) - {S.OTHER_HOME_SINGLETON}
    assert len(SkipReason) == 14  # DID-12's 13 plus other_home_singleton (issue 10)
    assert {c.value for c in CleanupClass} == {"safe_auto", "operator_required", "never_touch"}
    assert {s.value for s in IdentitySource} == {
        "health_self_report",
        "cmdline_marker",
        "state_record",
        "none",
    }


def _listener(family: DaemonFamily, port: int) -> ListenerObservation:
    return obs(
        family=family,
        port=port,
        health=replace(OK, payload=payload(port=port, daemon_family=family.value)),
    )


BOUNDARIES = [
    (DaemonFamily.SYNC, SYNC_RANGE, 9400, SAFE),
    (DaemonFamily.SYNC, SYNC_RANGE, 9449, SAFE),
    (DaemonFamily.SYNC, SYNC_RANGE, 9399, NEVER),
    (DaemonFamily.SYNC, SYNC_RANGE, 9450, NEVER),
    (DaemonFamily.DASHBOARD, DASHBOARD_RANGE, 9237, SAFE),
    (DaemonFamily.DASHBOARD, DASHBOARD_RANGE, 9336, SAFE),
    (DaemonFamily.DASHBOARD, DASHBOARD_RANGE, 9236, NEVER),
    (DaemonFamily.DASHBOARD, DASHBOARD_RANGE, 9337, NEVER),
]


@pytest.mark.parametrize(("family", "rng", "port", "cls"), BOUNDARIES)
def test_default_range_boundaries(
    family: DaemonFamily, rng: object, port: int, cls: CleanupClass
) -> None:
    got = classify(_listener(family, port), fg(family=family, range=rng, singleton=None))
    assert got.cleanup_class is cls
    if cls is NEVER:
        assert got.skip_reason is SkipReason.OUT_OF_RANGE


def test_record_fields_and_json_safety() -> None:
    got = classify(
        obs(health=replace(OK, payload=payload(package_version="3.2.2")), pid_source="lsof"),
        fg(),
    )
    d = got.to_dict()
    # Every field but the scanning app (an object, not part of the JSON document).
    assert list(d) == [f for f in DaemonIdentityRecord.__dataclass_fields__ if f != "app"]
    assert got.app is KITTY
    assert json.loads(json.dumps(d)) == d
    assert d["cleanup_class"] == "safe_auto"
    assert d["skip_reason"] is None
    assert d["identity_source"] == "health_self_report"
    assert d["daemon_family"] == "sync"
    assert d["connect_state"] == "open"
    assert d["health_status"] == "ok"
    assert d["stale_version"] is True
    assert d["package_version"] == "3.2.2"
    assert d["singleton_scope_id"] == SCOPE
    assert d["daemon_root"] == str(ROOT)
    assert d["process_started_at"] == STARTED + 0.3
    assert d["spawn_shape_ok"] is True
    assert d["self_report_matches_listener"] is True
    assert d["start_time_matches"] is True
    assert d["is_recorded_singleton"] is False
    assert d["busy"] is False
    assert d["idle_s"] == 3.0
    assert d["executable_summary"] == f"exe={PY} exec_marker={PY}"
    assert "stale_version:3.2.2!=0.1.0" in d["evidence"]
    assert "pid_source:lsof" in d["evidence"]


def test_unknowns_are_null_and_evidence_names_them() -> None:
    got = classify(
        obs(
            pid=None,
            pid_error=PidError.LOOKUP_FAILED,
            argv=None,
            argv_error=ArgvError.GONE,
            create_time=None,
            exe=None,
            connect=ConnectState.SUSPECT,
            health=replace(OTHER_FAMILY_INVALID, claimed_family="sync"),
        ),
        fg(package_version=None),
    )
    assert got.pid is None
    assert got.process_started_at is None
    assert got.package_version is None
    assert got.spawn_shape_ok is None
    assert got.self_report_matches_listener is None
    assert got.start_time_matches is None
    assert got.stale_version is None
    assert got.busy is None
    assert got.executable_summary is None
    assert got.skip_reason is SkipReason.MISSING_PID
    for item in ("connect_suspect", "health_invalid", "pid_error:lookup_failed", "argv_error:gone"):
        assert item in got.evidence


def test_other_family_names_the_claim_in_evidence() -> None:
    got = classify(obs(health=replace(OK, payload=payload(daemon_family="dashboard"))), fg())
    assert got.daemon_family == "sync"  # the scanned family (sweep guards rely on it)
    assert "claimed_family:dashboard" in got.evidence


def test_evidence_marks_exec_and_protocol_mismatch() -> None:
    got = classify(
        obs(
            argv=("kitty-daemon", f"--kitty-daemon-root={ROOT}", "--kitty-daemon-exec=/old/py"),
            health=replace(OK, payload=payload(protocol_version=2)),
        ),
        fg(),
    )
    assert got.cleanup_class is SAFE  # executable and protocol differences are allowed
    assert "exec_mismatch" in got.evidence
    assert "protocol_mismatch:2!=1" in got.evidence


@pytest.mark.parametrize(
    ("argv", "item"),
    [
        (("kitty-daemon",), "root_marker:absent"),
        (("kitty-daemon", "--kitty-daemon-root="), "root_marker:empty"),
        (
            ("kitty-daemon", "--kitty-daemon-root=/a", "--kitty-daemon-root=/b"),
            "root_marker:conflict",
        ),
        (("kitty-daemon", "--kitty-daemon-root=/a"), "root_marker:other_root"),
    ],
)
def test_evidence_names_the_root_marker_problem(argv: tuple[str, ...], item: str) -> None:
    assert item in classify(obs(argv=argv), fg()).evidence


def test_plain_strings_work_like_enum_members() -> None:
    loose = obs(
        family="sync",
        connect="open",
        health=replace(OK, outcome="ok"),  # type: ignore[arg-type]  # callers may pass wire strings
    )
    assert classify(loose, fg()).cleanup_class is SAFE


@pytest.mark.parametrize(
    ("status", "body", "outcome", "looks"),
    [
        (200, None, HealthOutcome.OK, True),
        (503, None, HealthOutcome.HTTP_ERROR, False),
        (
            200,
            b'{"daemon_family": "dashboard", "protocol_version": 1}',
            HealthOutcome.INVALID,
            True,
        ),
        (200, b"<html>", HealthOutcome.INVALID, False),
        (404, b"<html>", HealthOutcome.HTTP_ERROR, False),
    ],
)
def test_probe_from_response(
    status: int, body: bytes | None, outcome: HealthOutcome, looks: bool
) -> None:
    parsed = parse_health(body if body is not None else payload().to_json())
    probe = HealthProbe.from_response(status, parsed, elapsed_ms=2.0)
    assert probe.outcome is outcome
    assert probe.looks_kitty is looks
    assert probe.http_status == status
    assert (probe.payload is not None) == (outcome is HealthOutcome.OK)
    if isinstance(parsed, HealthParseError) and looks:
        assert probe.claimed_family == "dashboard"


# ---- DID-15 invariants (property tests) -------------------------------------------------------

argvs = st.sampled_from(
    [
        ARGV,
        ("python3", "-m", "kitty_daemon_identity"),
        ("kitty-daemon", "--kitty-daemon-root=/other"),
        ("kitty-daemon", "--kitty-daemon-root="),
        ("node", "x.js"),
        (*ARGV, "--kitty-daemon-root=/x"),
    ]
)
payloads = st.builds(
    payload,
    daemon_family=st.sampled_from(["sync", "dashboard"]),
    package_version=st.sampled_from(["0.1.0", "3.2.2"]),
    protocol_version=st.sampled_from([1, 2]),
    singleton_scope_id=st.sampled_from([SCOPE, f"{ROOT}#other"]),
    pid=st.sampled_from([PID, PID + 1]),
    port=st.sampled_from([PORT, 9400, 9450]),
    process_started_at=st.sampled_from([STARTED, STARTED + 5]),
)
probes = st.one_of(
    st.builds(
        lambda p: HealthProbe(HealthOutcome.OK, 200, p, True, None, 1.0, p.daemon_family),
        payloads,
    ),
    st.just(TIMEOUT),
    st.just(OTHER_FAMILY_INVALID),
    st.just(replace(OTHER_FAMILY_INVALID, claimed_family="sync")),
    st.just(HealthProbe(HealthOutcome.HTTP_ERROR, 404)),
    st.just(HealthProbe(HealthOutcome.NON_HTTP)),
    st.just(HealthProbe(HealthOutcome.REFUSED)),
)
observations = st.builds(
    obs,
    port=st.sampled_from([PORT, 9400, 9449, 9399, 9450, 9410]),
    connect=st.sampled_from(list(ConnectState)),
    pid=st.sampled_from([PID, PID + 1, 7000, None]),
    argv=st.one_of(st.none(), argvs),
    create_time=st.sampled_from([STARTED, STARTED + 0.9, STARTED + 5, 1.0e9, None]),
    exe=st.sampled_from([PY, "/other/py", None]),
    health=probes,
)
foregrounds = st.builds(
    fg,
    singleton=st.sampled_from([None, record(), record(PID, PORT, STARTED)]),
    package_version=st.sampled_from(["0.1.0", "9.9.9", None]),
)

NEVER_REASONS = {
    S.OUT_OF_RANGE,
    S.OTHER_FAMILY,
    S.NOT_KITTY,
    S.THIRD_PARTY,
    S.IS_RECORDED_SINGLETON,
}


@settings(max_examples=400, deadline=None)
@given(observations, foregrounds)
def test_invariants(o: ListenerObservation, f: Foreground) -> None:
    got = classify(o, f)
    assert (got.skip_reason is None) == (got.cleanup_class is SAFE)
    if got.cleanup_class is NEVER:
        assert got.skip_reason in NEVER_REASONS
    else:
        assert got.skip_reason not in NEVER_REASONS
    if got.cleanup_class is SAFE:
        p = o.health.payload
        assert p is not None
        assert o.port in f.range
        assert p.daemon_family == o.family
        assert got.spawn_shape_ok is True
        assert o.argv is not None
        assert f"--kitty-daemon-root={f.daemon_root}" in o.argv
        assert o.health.outcome is HealthOutcome.OK
        assert o.connect is ConnectState.OPEN
        assert p.singleton_scope_id == f.scope_id
        assert (p.pid, p.port) == (o.pid, o.port)
        assert got.start_time_matches is True
        assert not got.is_recorded_singleton
    assert classify(o, f) == got  # deterministic


@settings(max_examples=300, deadline=None)
@given(
    observations,
    foregrounds,
    st.sampled_from(["0.0.1", "3.2.4"]),
    st.sampled_from([1, 3]),
    st.sampled_from(["/x/py", None]),
)
def test_versions_and_exe_never_change_the_class(
    o: ListenerObservation, f: Foreground, version: str, protocol: int, exe: str | None
) -> None:
    before = classify(o, f)
    health = o.health
    if health.payload is not None:
        health = replace(
            health,
            payload=replace(health.payload, package_version=version, protocol_version=protocol),
        )
    after = classify(replace(o, health=health, exe=exe), replace(f, package_version=version))
    assert (after.cleanup_class, after.skip_reason) == (before.cleanup_class, before.skip_reason)


UNKNOWN_REPLACEMENTS = {
    "pid": {"pid": None, "pid_error": PidError.ACCESS_DENIED},
    "argv": {"argv": None, "argv_error": ArgvError.ACCESS_DENIED},
    "create_time": {"create_time": None},
    "exe": {"exe": None},
    "health": {"health": TIMEOUT},
    "connect": {"connect": ConnectState.SUSPECT, "health": TIMEOUT},
}


@settings(max_examples=400, deadline=None)
@given(observations, foregrounds, st.sampled_from(sorted(UNKNOWN_REPLACEMENTS)))
def test_unknown_never_moves_toward_safe_auto(
    o: ListenerObservation, f: Foreground, fact: str
) -> None:
    before = classify(o, f)
    after = classify(replace(o, **UNKNOWN_REPLACEMENTS[fact]), f)  # type: ignore[arg-type]  # values typed per field above
    if after.cleanup_class is SAFE:
        assert before.cleanup_class is SAFE
    if before.cleanup_class is OPER:
        assert after.cleanup_class is not SAFE


# -- issue 10 -----------------------------------------------------------------------------------
OTHER_ROOT = "/home/v/.kitty/daemon"
OTHER_ARGV = ("python3", "-m", "kitty_daemon_identity", f"--kitty-daemon-root={OTHER_ROOT}",
              f"--kitty-daemon-exec={PY}")  # fmt: skip
ITS_RECORD = record(pid=PID, port=PORT, started=STARTED)


def other_obs(other: OtherRoot | None, **changes: object) -> ListenerObservation:
    return obs(argv=OTHER_ARGV, other_root=other, **changes)


def test_other_home_singleton_is_never_touch() -> None:
    got = classify(other_obs(OtherRoot(OTHER_ROOT, True, ITS_RECORD)), fg())
    assert (got.cleanup_class, got.skip_reason) == (NEVER, S.OTHER_HOME_SINGLETON)
    assert got.identity_source == SRC.STATE_RECORD
    assert S.OTHER_HOME_SINGLETON.value == "other_home_singleton"


@pytest.mark.parametrize(
    "its_record",
    [record(pid=PID + 1, port=PORT, started=STARTED),
     record(pid=PID, port=PORT + 1, started=STARTED),
     record(pid=PID, port=PORT, started=STARTED + 2.0)],
    ids=["pid", "port", "start_time"],
)  # fmt: skip
def test_other_home_singleton_needs_every_leg(its_record: StateRecord) -> None:
    got = classify(other_obs(OtherRoot(OTHER_ROOT, True, its_record)), fg())
    assert (got.cleanup_class, got.skip_reason) == (OPER, S.CROSS_ROOT)


def test_other_home_singleton_needs_a_known_create_time() -> None:
    got = classify(other_obs(OtherRoot(OTHER_ROOT, True, ITS_RECORD), create_time=None), fg())
    assert got.skip_reason == S.CROSS_ROOT


def test_other_root_state_of_a_different_root_is_ignored() -> None:
    got = classify(other_obs(OtherRoot("/elsewhere", True, ITS_RECORD)), fg())
    assert got.skip_reason == S.CROSS_ROOT


def test_marker_naming_a_missing_root_stays_operator_required() -> None:
    got = classify(other_obs(OtherRoot(OTHER_ROOT, False, ITS_RECORD)), fg())
    assert (got.cleanup_class, got.skip_reason) == (OPER, S.CROSS_ROOT)
    assert "root_missing" in got.evidence


def test_load_other_root(tmp_path: Path) -> None:
    assert load_other_root(tmp_path / "gone") == OtherRoot(str(tmp_path / "gone"), False, None)
    assert load_other_root(tmp_path) == OtherRoot(str(tmp_path), True, None)
    write_state(tmp_path, ITS_RECORD)
    got = load_other_root(tmp_path)
    assert got.exists
    assert got.state == ITS_RECORD
    assert classify(other_obs(replace(got, root=OTHER_ROOT)), fg()).skip_reason == (
        S.OTHER_HOME_SINGLETON
    )


def test_start_time_matches_is_unknown_without_os_create_time() -> None:
    got = classify(obs(create_time=None), fg())
    assert got.start_time_matches is None
    assert got.cleanup_class != SAFE


def test_suspect_connect_with_ok_health_is_never_safe_auto() -> None:
    got = classify(obs(connect=ConnectState.SUSPECT), fg())
    assert got.cleanup_class != SAFE


def test_non_kitty_json_200_with_unreadable_argv_is_never_touch() -> None:
    probe = HealthProbe(HealthOutcome.INVALID, 200, None, False, "not_kitty", 1.0, None)
    got = classify(obs(health=probe, argv=None, argv_error=ArgvError.ACCESS_DENIED), fg())
    assert got.cleanup_class == NEVER


@pytest.mark.parametrize(
    ("pid", "port", "started", "singleton"),
    [(PID, PORT, STARTED, True), (PID + 1, PORT, STARTED, False), (PID, PORT + 1, STARTED, False),
     (PID, PORT, STARTED + 2.0, False)],
    ids=["all", "pid", "port", "start_time"],
)  # fmt: skip
def test_recorded_singleton_legs(pid: int, port: int, started: float, singleton: bool) -> None:
    got = classify(obs(), fg(singleton=record(pid=pid, port=port, started=started)))
    assert got.is_recorded_singleton is singleton
    assert (got.skip_reason == S.IS_RECORDED_SINGLETON) is singleton


@pytest.mark.parametrize(
    "changes", [{"skip_reason": SkipReason.CROSS_ROOT}, {"pid": None}], ids=["reason", "no_pid"]
)
def test_static_guard_refuses_inconsistent_safe_auto(changes: dict[str, object]) -> None:
    good = classify(obs(), fg())
    assert good.cleanup_class == SAFE
    with pytest.raises(ValueError, match="safe_auto"):
        replace(good, **changes)  # type: ignore[arg-type]


# -- pins for decisions mutation testing showed unpinned (issue 10) ----------------------------


def test_a_probe_does_not_look_kitty_unless_it_says_so() -> None:
    assert HealthProbe(HealthOutcome.REFUSED).looks_kitty is False
    assert TIMEOUT.looks_kitty is False


def test_record_dict_holds_plain_json_values_not_enum_members() -> None:
    got = classify(obs(), fg()).to_dict()
    members = {k: v for k, v in got.items() if isinstance(v, Enum)}
    assert members == {}
    assert type(got["cleanup_class"]) is str


@pytest.mark.parametrize(("offset", "singleton"), [(1.0, True), (1.25, False)])
def test_the_singleton_start_time_tolerance_includes_its_boundary(
    offset: float, singleton: bool
) -> None:
    ours = record(pid=PID, port=PORT, started=1.0e9)
    got = classify(obs(create_time=1.0e9 + offset), fg(singleton=ours))
    assert (got.skip_reason == S.IS_RECORDED_SINGLETON) is singleton


def test_the_os_pid_outranks_the_payload_for_the_singleton() -> None:
    """The OS shows another process on the singleton's port; its payload echoing the recorded
    pid and start time does not make it the singleton."""
    ours = record(pid=PID, port=PORT, started=STARTED)
    echo = replace(OK, payload=payload(pid=PID, process_started_at=STARTED))
    got = classify(obs(pid=PID + 1, create_time=STARTED, health=echo), fg(singleton=ours))
    assert got.skip_reason != S.IS_RECORDED_SINGLETON
    # The same listener, the OS showing the recorded pid: the singleton (the test can fail).
    same = classify(obs(pid=PID, create_time=STARTED, health=echo), fg(singleton=ours))
    assert same.skip_reason == S.IS_RECORDED_SINGLETON


@pytest.mark.parametrize(
    ("observation", "evidence"),
    [
        (obs(), ()),
        (obs(connect=ConnectState.SUSPECT, health=TIMEOUT), ("connect_suspect", "health_timeout")),
        (obs(health=replace(OTHER_FAMILY_INVALID, claimed_family="sync")),
         ("health_invalid", "health_error:missing_field:pid")),
        (obs(health=HealthProbe(HealthOutcome.TIMEOUT, error="timeout")), ("health_timeout",)),
        (obs(health=OTHER_FAMILY_INVALID),
         ("health_invalid", "health_error:missing_field:pid", "claimed_family:dashboard")),
        (obs(pid=None, pid_error=PidError.ACCESS_DENIED, argv=None, create_time=None),
         ("pid_error:access_denied",)),
        (obs(argv=None, argv_error=ArgvError.GONE), ("argv_error:gone",)),
    ],
    ids=["ours", "suspect_timeout", "invalid", "timeout_error_not_named", "other_family",
         "pid_error", "argv_error"],
)  # fmt: skip
def test_evidence_is_exactly_what_was_observed(
    observation: ListenerObservation, evidence: tuple[str, ...]
) -> None:
    """Only an INVALID payload's error is evidence (a timeout's is the outcome already); a
    healthy, open listener of ours has none."""
    assert classify(observation, fg()).evidence == evidence


@pytest.mark.parametrize(
    "other",
    [OtherRoot(OTHER_ROOT, True, None), None],
    ids=["that_root_exists", "that_root_not_looked_at"],
)
def test_root_missing_is_said_only_of_a_root_seen_missing(other: OtherRoot | None) -> None:
    got = classify(other_obs(other), fg())
    assert "root_marker:other_root" in got.evidence
    assert "root_missing" not in got.evidence


def test_an_ok_outcome_without_a_payload_is_not_a_live_kitty_daemon() -> None:
    """HealthProbe is public: an OK outcome built without a payload proves nothing. Our marked
    process stays operator_required (unresponsive); a stranger stays never_touch."""
    empty = HealthProbe(HealthOutcome.OK, 200)
    ours = classify(obs(health=empty), fg())
    assert (ours.cleanup_class, ours.skip_reason) == (OPER, S.UNRESPONSIVE)
    stranger = classify(obs(argv=("nginx",), health=empty), fg())
    assert (stranger.cleanup_class, stranger.skip_reason) == (NEVER, S.THIRD_PARTY)
    # A family claim without a payload is no self-report either: not "another family's".
    claiming = replace(empty, claimed_family="dashboard")
    got = classify(obs(health=claiming), fg())
    assert (got.cleanup_class, got.skip_reason) == (OPER, S.UNRESPONSIVE)


@pytest.mark.parametrize(
    ("claim", "matches"),
    [({}, True), ({"pid": PID + 1}, False), ({"port": PORT + 1}, False)],
    ids=["both", "pid_differs", "port_differs"],
)
def test_a_self_report_matches_the_listener_only_in_pid_and_port(
    claim: dict[str, int], matches: bool
) -> None:
    got = classify(obs(health=replace(OK, payload=payload(**claim))), fg())
    assert got.self_report_matches_listener is matches


def test_the_start_time_falls_back_to_the_self_report_only_when_the_os_has_none() -> None:
    assert classify(obs(create_time=None), fg()).process_started_at == STARTED
    assert classify(obs(create_time=STARTED + 0.3), fg()).process_started_at == STARTED + 0.3
    assert classify(obs(create_time=None, health=TIMEOUT), fg()).process_started_at is None


def test_a_family_object_is_named_like_its_enum_member() -> None:
    # Apps pass their profile's Family: the record names it by its wire name, and a payload
    # claiming that same family is no "other family" claim.
    family = KITTY.family("sync")
    got = classify(obs(family=family), fg())
    assert got.daemon_family == "sync"
    assert not [e for e in got.evidence if e.startswith("claimed_family:")]
    assert got.cleanup_class is SAFE


def test_the_scanning_app_is_neither_shown_nor_compared() -> None:
    # `app` rides along for sweep; the record's repr and equality are its observed facts only.
    got = classify(obs(), fg())
    other_app = replace(got, app=replace(KITTY, name="acme"))
    assert "AppProfile" not in repr(got)
    assert other_app == got
