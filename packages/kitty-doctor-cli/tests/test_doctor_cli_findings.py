"""The findings engine, row by row of the DOC-04 table (pure: facts in, findings out)."""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

import pytest
import typer

from _doctorkit import (
    CTX,
    IDENTITY_OK,
    LOCK_FREE,
    RECORD,
    STORAGE_OK,
    TOKENS_OK,
    daemon,
    daemons,
    orphan,
    orphans,
)
from kitty_doctor._cli import app
from kitty_doctor._findings import FindingContext, derive_findings, doctor_command
from kitty_doctor._model import (
    DaemonStatus,
    Finding,
    LockHolder,
    ScopeKeyFacts,
    SectionName,
    SectionResult,
    SectionStatus,
    Severity,
)


def findings(**facts: Any) -> tuple[Finding, ...]:
    base: dict[str, Any] = {
        "identity": IDENTITY_OK,
        "tokens": TOKENS_OK,
        "storage": STORAGE_OK,
        "lock": LOCK_FREE,
        "daemons": daemons(daemon()),
        "orphans": orphans(),
        "sections": (),
        "ctx": CTX,
    }
    base.update(facts)
    return derive_findings(**base)


def ids(found: tuple[Finding, ...]) -> list[str]:
    return [f.id for f in found]


def only(found: tuple[Finding, ...], id_: str) -> Finding:
    matching = [f for f in found if f.id == id_]
    assert len(matching) == 1, ids(found)
    return matching[0]


def test_healthy_machine_has_no_findings() -> None:
    assert findings() == ()


def test_kd101_no_session_uses_login_command_or_fallback_text() -> None:
    no_session = replace(IDENTITY_OK, state="not_authenticated")
    f = only(findings(identity=no_session), "KD101")
    assert (f.name, f.severity) == ("no_session", Severity.CRITICAL)
    assert f.remediation.command is None
    assert f.remediation.description == "log in again with your application"
    ctx = replace(CTX, login_command="myapp login")
    f = only(findings(identity=no_session, ctx=ctx), "KD101")
    assert f.remediation.command == "myapp login"


def test_kd101_falls_back_to_storage_when_identity_crashed() -> None:
    missing = replace(STORAGE_OK, exists=False, parse="missing", mode=None, size=None)
    assert ids(findings(identity=None, storage=missing)) == ["KD101"]


def test_kd102_corrupt_is_not_no_session_and_moves_the_file_aside() -> None:
    corrupt = replace(STORAGE_OK, parse="corrupt", corrupt_reason="file is not valid JSON")
    found = findings(identity=replace(IDENTITY_OK, state="corrupt"), storage=corrupt)
    assert ids(found) == ["KD102"]
    f = found[0]
    assert f.severity is Severity.CRITICAL
    assert "file is not valid JSON" in f.summary
    assert f.remediation.command == "mv /h/auth/session.json /h/auth/session.json.corrupt"
    assert "log in again with your application" in f.remediation.description
    # Identity crashed: storage alone still says corrupt.
    assert ids(findings(identity=None, storage=corrupt)) == ["KD102"]


def test_kd102_unreadable_session_is_not_no_session() -> None:
    unreadable = replace(STORAGE_OK, parse="unreadable", corrupt_reason="Permission denied")
    for identity in (replace(IDENTITY_OK, state="unreadable"), None):  # None: Identity crashed
        found = findings(identity=identity, storage=unreadable)
        assert ids(found) == ["KD102"]
        assert found[0].summary == "session file is unreadable (Permission denied)"
        assert found[0].remediation.command == (
            "mv /h/auth/session.json /h/auth/session.json.corrupt"
        )


@pytest.mark.parametrize(
    ("storage_kw", "command"),
    [
        ({"dir_mode": 0o000}, "chmod 700 /h/auth"),
        ({"owner_ok": False}, "sudo chown 1000 /h/auth/session.json"),
        ({"mode": 0o000}, "chmod 600 /h/auth/session.json"),
    ],
    ids=["dir_shuts_owner_out", "another_users_file", "file_mode_shuts_owner_out"],
)
def test_kd106_unreadable_is_not_corrupt_and_says_how_to_read_it_again(
    storage_kw: dict[str, Any], command: str
) -> None:
    """Issue 12: a session the OS will not let us read may be perfectly good: never `mv` it."""
    denied = replace(
        STORAGE_OK,
        parse="unreadable",
        corrupt_reason="Permission denied",
        permission_denied=True,
        **storage_kw,
    )
    found = findings(
        identity=replace(IDENTITY_OK, state="unreadable"),
        storage=denied,
        ctx=replace(CTX, uid=1000),
    )
    f = only(found, "KD106")
    assert (f.name, f.severity) == ("storage_unreadable", Severity.CRITICAL)
    assert "not corrupt" in f.summary
    assert f.remediation.command == command
    assert "KD102" not in ids(found)


def test_kd102_quotes_paths_with_spaces() -> None:
    ctx = replace(CTX, session_path="/my home/auth/session.json", login_command="app login")
    found = findings(identity=replace(IDENTITY_OK, state="corrupt"), ctx=ctx)
    cmd = only(found, "KD102").remediation.command
    assert cmd is not None
    assert shlex.split(cmd) == [
        "mv",
        "/my home/auth/session.json",
        "/my home/auth/session.json.corrupt",
    ]
    assert "app login" in only(found, "KD102").remediation.description


def test_kd103_session_expired() -> None:
    f = only(findings(identity=replace(IDENTITY_OK, state="expired")), "KD103")
    assert f.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("access", "refresh", "expected"),
    [
        (-5.0, None, ["KD104"]),  # server-managed refresh
        (0.0, 3600.0, ["KD104"]),
        (-5.0, -1.0, []),  # refresh expired: identity would say expired instead
        (10.0, None, []),
    ],
)
def test_kd104_access_expired_is_info(
    access: float, refresh: float | None, expected: list[str]
) -> None:
    tokens = replace(TOKENS_OK, access_expires_in_s=access, refresh_expires_in_s=refresh)
    found = findings(tokens=tokens)
    assert ids(found) == expected
    if expected:
        assert found[0].severity is Severity.INFO
        assert found[0].remediation.command is None


@pytest.mark.parametrize(
    ("storage_kw", "command"),
    [
        ({"mode": 0o644}, "chmod 600 /h/auth/session.json"),
        ({"dir_mode": 0o755}, "chmod 700 /h/auth"),
        ({"dir_mode": 0o500}, "chmod 700 /h/auth"),
        ({"home_mode": 0o750}, "chmod 700 /h"),
        ({"mode": 0o640, "dir_mode": 0o711}, "chmod 600 /h/auth/session.json && chmod 700 /h/auth"),
        ({"owner_ok": False}, None),
    ],
)
def test_kd105_storage_permissions(storage_kw: dict[str, Any], command: str | None) -> None:
    f = only(findings(storage=replace(STORAGE_OK, **storage_kw)), "KD105")
    assert f.severity is Severity.WARN
    assert f.remediation.command == command


def test_kd201_live_holder_past_threshold_names_the_true_holder() -> None:
    lock = replace(
        LOCK_FREE,
        held=True,
        holder_pid=4242,
        holder_source="proc_locks",
        holder_cmdline="python worker.py",
        record=RECORD,
        holders=(LockHolder(4242, "python worker.py"),),
    )
    f = only(findings(lock=lock), "KD201")
    assert f.severity is Severity.CRITICAL
    assert f.remediation.command == "kill 4242"
    assert "4242" in f.summary
    assert "python worker.py" in f.summary
    assert "75 s" in f.summary


def test_kd201_never_suggests_killing_a_taker_that_exited() -> None:
    # Issue 10 §8: the pid that took the lock died; a forked child holds the inherited descriptor.
    lock = replace(
        LOCK_FREE,
        held=True,
        holder_pid=4242,
        holder_source="proc_locks",
        record=RECORD,
        holders=(LockHolder(4243, "sleep 600"), LockHolder(4250, None)),
    )
    f = only(findings(lock=lock), "KD201")
    assert f.remediation.command == "kill 4243 4250"
    assert "taken by pid 4242 (exited) is held by pid 4243 (sleep 600), pid 4250" in f.summary
    unknown = only(findings(lock=replace(lock, holders=())), "KD201")
    assert unknown.remediation.command == "fuser -v /h/auth/refresh.lock"
    assert "kill" not in unknown.remediation.command


def test_kd201_past_max_hold_even_below_threshold() -> None:
    rec = replace(RECORD, age_s=16.0, max_hold_s=10.0)
    lock = replace(
        LOCK_FREE, held=True, holder_pid=4242, record=rec, holders=(LockHolder(4242, None),)
    )
    assert ids(findings(lock=lock)) == ["KD201"]
    assert (
        "for 16 s, longer than its max hold of 10 s + 5 s grace"
        in only(findings(lock=lock), "KD201").summary
    )
    young = replace(lock, record=replace(rec, age_s=14.0))
    assert ids(findings(lock=young)) == []


def test_kd201_past_threshold_says_so() -> None:
    rec = replace(RECORD, age_s=61.0, max_hold_s=None)
    lock = replace(LOCK_FREE, held=True, holder_pid=4242, record=rec)
    summary = only(findings(lock=lock), "KD201").summary
    assert summary.endswith("for 61 s, longer than the stuck threshold of 60 s")


def test_kd201_not_raised_when_record_belongs_to_another_pid() -> None:
    # The record was written by an earlier holder: the true holder's age is unknown.
    lock = replace(LOCK_FREE, held=True, holder_pid=999, record=RECORD)
    assert findings(lock=lock) == ()


def test_kd202_stale_record_is_info_not_critical() -> None:
    lock = replace(LOCK_FREE, stale_record=True, record=RECORD)
    f = only(findings(lock=lock), "KD202")
    assert f.severity is Severity.INFO
    assert f.remediation.command == "kitty-doctor --unstick-lock"
    fresh = replace(lock, record=replace(RECORD, age_s=30.0))
    assert findings(lock=fresh) == ()


def test_kd202_remediation_repeats_home_family_and_threshold() -> None:
    ctx = FindingContext("/h/auth/session.json", home_flag="/my home", family="sync")
    ctx = replace(ctx, stuck_threshold_s=5.0)
    lock = replace(LOCK_FREE, stale_record=True, record=RECORD, stuck_threshold_s=5.0)
    cmd = only(findings(lock=lock, ctx=ctx), "KD202").remediation.command
    assert cmd is not None
    assert shlex.split(cmd) == [
        "kitty-doctor",
        "--home",
        "/my home",
        "--family",
        "sync",
        "--unstick-lock",
        "--stuck-threshold",
        "5",
    ]


def test_kd203_network_fs_and_kd204_foreign_host() -> None:
    lock = replace(
        LOCK_FREE,
        network_fs=True,
        fs_type="nfs4",
        mode="fcntl",
        stale_record=True,
        record=replace(RECORD, host="otherbox", age_s=1.0),
    )
    found = findings(lock=lock)
    assert ids(found) == ["KD203", "KD204"]
    assert all(f.severity is Severity.WARN for f in found)
    assert "nfs4" in found[0].summary
    assert "fcntl" in found[0].summary
    assert "otherbox" in found[1].summary
    assert found[0].remediation.command == "export KITTY_HOME=<path on a local disk>"


def test_kd301_drift_only_when_both_versions_known() -> None:
    drift = daemon(health_package_version="0.3.9")
    f = only(findings(daemons=daemons(drift)), "KD301")
    assert f.severity is Severity.WARN
    assert f.remediation.command == "kitty-doctor --reset"
    assert "0.3.9" in f.summary
    assert "0.4.0" in f.summary
    unknown = daemon(health_package_version="0.3.9", expected_version=None)
    assert findings(daemons=daemons(unknown)) == ()


def test_kd302_unhealthy_needs_force() -> None:
    sick = daemon(DaemonStatus.UNHEALTHY, health_error="health timeout")
    f = only(findings(daemons=daemons(sick)), "KD302")
    assert f.remediation.command == "kitty-doctor --reset --force"
    assert "health timeout" in f.summary


@pytest.mark.parametrize("status", [DaemonStatus.DEAD, DaemonStatus.REUSED])
def test_kd303_stale_state_record(status: DaemonStatus) -> None:
    f = only(findings(daemons=daemons(daemon(status))), "KD303")
    assert f.severity is Severity.INFO
    assert f.remediation.command == "kitty-doctor --reset"


def test_unverified_daemon_raises_nothing() -> None:
    assert findings(daemons=daemons(daemon(DaemonStatus.UNVERIFIED))) == ()


def test_kd304_insecure_scope_key() -> None:
    key = ScopeKeyFacts("/h/daemon/scope.key", True, False)
    f = only(findings(daemons=daemons(None, key)), "KD304")
    assert f.remediation.command == "chmod 600 /h/daemon/scope.key"
    missing = ScopeKeyFacts("/h/daemon/scope.key", False, False)
    assert findings(daemons=daemons(None, missing)) == ()


def test_kd401_and_kd402_from_orphans() -> None:
    found = findings(
        orphans=orphans(
            orphan(20401, "safe_auto"),
            orphan(20402, "safe_auto"),
            orphan(20403, "operator_required", "pre_marker"),
            orphan(20404, "never_touch", "third_party"),
        )
    )
    assert ids(found) == ["KD401", "KD402"]
    safe, operator = found
    assert safe.summary == "2 orphan daemons kitty can stop safely (port 20401, 20402)"
    assert safe.remediation.command == "kitty-doctor --reset"
    assert "port 20403: no kitty marker: started before kitty 0.1" in operator.summary
    assert operator.remediation.command == "kitty-doctor --reset --force"


def test_never_touch_alone_is_not_a_finding() -> None:
    assert findings(orphans=orphans(orphan(20404, "never_touch", "third_party"))) == ()


def test_kd901_one_per_crashed_section() -> None:
    crashed = (
        SectionResult(SectionName.ORPHANS, SectionStatus.CRASHED, 1.0, error="OSError: boom"),
        SectionResult(SectionName.TOKENS, SectionStatus.OK, 1.0),
    )
    f = only(findings(sections=crashed, orphans=None), "KD901")
    assert f.severity is Severity.CRITICAL
    assert "Orphans" in f.summary
    assert "OSError: boom" in f.summary
    assert f.remediation.command == "kitty-doctor --verbose"


def test_findings_are_sorted_by_id() -> None:
    found = findings(
        identity=replace(IDENTITY_OK, state="expired"),
        orphans=orphans(orphan(20401, "safe_auto")),
        lock=replace(LOCK_FREE, network_fs=True),
    )
    assert ids(found) == ["KD103", "KD203", "KD401"]


# -- DOC-04 / IMP-07: every kitty-doctor remediation is a command the CLI accepts ----------------


def _all_doctor_remediations() -> list[tuple[str, str]]:
    ctxs = [
        CTX,
        FindingContext("/h/auth/session.json", home_flag="/a b", family="dashboard"),
        replace(CTX, stuck_threshold_s=0.5),
    ]
    out: list[tuple[str, str]] = []
    for ctx in ctxs:
        found = findings(
            ctx=ctx,
            lock=replace(LOCK_FREE, stale_record=True, record=RECORD, stuck_threshold_s=0.5),
            daemons=daemons(daemon(DaemonStatus.UNHEALTHY)),
            orphans=orphans(orphan(1, "safe_auto"), orphan(2, "operator_required", "pre_marker")),
            sections=(SectionResult(SectionName.TOKENS, SectionStatus.CRASHED, 0.0, "E: x"),),
        )
        found += findings(ctx=ctx, daemons=daemons(daemon(DaemonStatus.DEAD)))
        found += findings(ctx=ctx, daemons=daemons(daemon(health_package_version="9")))
        out += [
            (f.id, f.remediation.command)
            for f in found
            if f.remediation.command and f.remediation.command.startswith("kitty-doctor")
        ]
    return out


def test_every_doctor_remediation_parses() -> None:
    commands = _all_doctor_remediations()
    covered = {id_ for id_, _ in commands}
    assert covered == {"KD202", "KD301", "KD302", "KD303", "KD401", "KD402", "KD901"}
    command = typer.main.get_command(app)
    for _, line in commands:
        argv = shlex.split(line)
        assert argv[0] == "kitty-doctor"
        # make_context parses (and validates) every option without running the command.
        ctx = command.make_context("kitty-doctor", argv[1:])
        assert ctx.params["json_mode"] is False


def test_doctor_command_defaults_are_minimal() -> None:
    assert doctor_command(CTX, "--reset") == "kitty-doctor --reset"
