"""Each section against the real thing: session files, a real lock holder, real daemons."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from _doctorkit import run, write_session
from _procs import Daemon, ThirdParty, kill_holder_leaving_record, lock_holder, sleeper
from kitty_daemon_identity import (
    DaemonFamily,
    StateRecord,
    ensure_scope_key,
    marker_args,
    read_state,
    scope_id,
    write_state,
)


def _ids(doc: dict[str, object]) -> list[str]:
    return [f["id"] for f in doc["findings"]]  # type: ignore[attr-defined]  # JSON list


# -- Identity / Tokens / Storage ----------------------------------------------------------------


def test_corrupt_session_is_kd102_not_kd101(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "auth").mkdir(mode=0o700)
    (home / "auth" / "session.json").write_text("{not json", encoding="utf-8")
    os.chmod(home / "auth" / "session.json", 0o600)
    doc = run("--json").json()
    assert _ids(doc) == ["KD102"]
    assert doc["identity"]["state"] == "corrupt"
    assert doc["storage"]["parse"] == "corrupt"
    assert "JSON" in doc["storage"]["corrupt_reason"]
    assert doc["tokens"]["present"] is False
    fix = doc["findings"][0]["remediation"]["command"]
    assert fix == f"mv {home}/auth/session.json {home}/auth/session.json.corrupt"
    assert doc["exit_code"] == 1
    # Reading never repaired or removed anything.
    assert (home / "auth" / "session.json").read_text(encoding="utf-8") == "{not json"


def test_unreadable_session_is_kd102_not_a_crash_nor_no_session(home: Path) -> None:
    # A session file that exists but cannot be opened (here a symlink loop: ELOOP, real OS
    # error; for a user it is usually EACCES on a file `sudo <app> login` wrote) is a finding
    # about the file: no section may crash and it must not be reported as "no session".
    home.mkdir(mode=0o700)
    (home / "auth").mkdir(mode=0o700)
    session = home / "auth" / "session.json"
    session.symlink_to("session.json")
    doc = run("--json").json()
    assert _ids(doc) == ["KD102"]
    assert all(s["status"] == "ok" for s in doc["sections"].values())
    assert doc["exit_code"] == 1
    assert doc["identity"]["state"] == "unreadable"
    assert doc["storage"]["exists"] is True
    assert doc["storage"]["parse"] == "unreadable"
    assert doc["storage"]["corrupt_reason"] == "Too many levels of symbolic links"
    assert doc["tokens"]["present"] is False
    assert doc["findings"][0]["summary"] == (
        "session file is unreadable (Too many levels of symbolic links)"
    )
    human = run()
    assert human.code == 1
    assert "crashed" not in human.out
    assert f"{session}: unreadable (Too many levels of symbolic links)" in human.out
    assert session.is_symlink()  # looked at, never touched


def test_expired_session_is_kd103(home: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    write_session(home, access_expires_at=past, refresh_expires_at=past)
    doc = run("--json", "--login-command", "myapp login").json()
    assert _ids(doc) == ["KD103"]
    assert doc["findings"][0]["remediation"]["command"] == "myapp login"


def test_expired_access_with_valid_refresh_is_kd104_info(home: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    write_session(
        home,
        access_expires_at=now - dt.timedelta(minutes=1),
        refresh_expires_at=now + dt.timedelta(days=3),
    )
    doc = run("--json").json()
    assert _ids(doc) == ["KD104"]
    assert doc["exit_code"] == 0
    assert doc["tokens"]["access_expires_in_s"] <= 0
    assert 2 * 86400 < doc["tokens"]["refresh_expires_in_s"] <= 3 * 86400
    human = run().out
    assert "access token: expired" in human
    assert "refresh token: 2 days left" in human


def test_login_command_from_environment(home: Path, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("KITTY_LOGIN_COMMAND", "corp-cli auth login")
    doc = run("--json").json()
    assert doc["findings"][0]["remediation"] == {
        "command": "corp-cli auth login",
        "description": "log in again",
    }
    monkeypatch.setenv("KITTY_LOGIN_COMMAND", "")
    doc = run("--json").json()
    assert doc["findings"][0]["remediation"]["command"] is None


def test_loose_permissions_are_kd105(home: Path) -> None:
    write_session(home)
    os.chmod(home / "auth" / "session.json", 0o644)
    os.chmod(home / "auth", 0o755)  # noqa: S103 - the loose mode is what this test reports
    doc = run("--json").json()
    assert _ids(doc) == ["KD105"]
    assert doc["storage"]["mode"] == "0644"
    assert doc["storage"]["dir_mode"] == "0755"
    assert doc["findings"][0]["remediation"]["command"] == (
        f"chmod 600 {home}/auth/session.json && chmod 700 {home}/auth"
    )
    assert doc["exit_code"] == 0  # a warning, not critical


# -- Refresh lock -------------------------------------------------------------------------------


HANDOFF = """
import os, subprocess, sys
from kitty_filelock import MachineFileLock
path = sys.argv[1]
MachineFileLock(path, label="refresh").acquire()
real = os.path.realpath(path)
fd = next(
    int(n) for n in os.listdir("/proc/self/fd")
    if os.path.realpath(f"/proc/self/fd/{n}") == real
)
child = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(120)", "inherited-holder"],
    pass_fds=[fd], stdin=subprocess.DEVNULL, start_new_session=True,
)
print(child.pid, flush=True)
os._exit(0)  # the taker dies holding the lock: no release, its record stays
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc fdinfo is Linux")
def test_a_dead_taker_is_never_named_the_lock_holder(home: Path) -> None:
    # Issue 10 §8: the locking pid died while a child it spawned keeps the inherited descriptor.
    import subprocess

    write_session(home)
    lock = home / "auth" / "refresh.lock"
    taker = subprocess.Popen(
        [sys.executable, "-c", HANDOFF, str(lock)], stdout=subprocess.PIPE, text=True
    )
    assert taker.stdout is not None
    child = int(taker.stdout.readline())
    taker.wait(timeout=10)
    taker.stdout.close()
    try:
        doc = run("--json", "--stuck-threshold", "0").json()
        facts = doc["refresh_lock"]
        assert (facts["held"], facts["holder_pid"]) == (True, taker.pid)
        assert [h["pid"] for h in facts["holders"]] == [child]
        assert _ids(doc) == ["KD201"]
        assert doc["findings"][0]["remediation"]["command"] == f"kill {child}"
        assert f"taken by pid {taker.pid} (exited)" in doc["findings"][0]["summary"]
        unstick = run("--json", "--unstick-lock").json()["repairs"]["unstick_lock"]["message"]
        dead_kill = re.compile(rf"kill {taker.pid}\b")
        assert f"kill {child}" in unstick
        assert not dead_kill.search(unstick)
        assert not dead_kill.search(run("--stuck-threshold", "0").out)
    finally:
        os.kill(child, 9)


def test_live_holder_past_threshold_is_kd201_with_true_pid(home: Path) -> None:
    write_session(home)
    lock = home / "auth" / "refresh.lock"
    with lock_holder(lock) as holder:
        doc = run("--json", "--stuck-threshold", "0").json()
        assert doc["refresh_lock"]["held"] is True
        assert doc["refresh_lock"]["holder_pid"] == holder.pid
        assert doc["refresh_lock"]["holder_source"] == "proc_locks"
        assert "kitty_filelock" in doc["refresh_lock"]["holder_cmdline"]
        assert doc["refresh_lock"]["stuck"] is True
        assert _ids(doc) == ["KD201"]
        assert doc["findings"][0]["remediation"]["command"] == f"kill {holder.pid}"
        assert doc["exit_code"] == 1
        # Below the threshold (and its max_hold) the same holder is simply "held".
        calm = run("--json").json()
        assert calm["refresh_lock"]["stuck"] is False
        assert _ids(calm) == []
        # --unstick-lock never rips a live holder's lock: it names the pid and removes nothing.
        result = run("--json", "--unstick-lock", "--stuck-threshold", "0").json()
        message = result["repairs"]["unstick_lock"]["message"]
        assert result["repairs"]["unstick_lock"]["released"] is False
        assert str(holder.pid) in message
        assert "kitty_filelock" in message
        assert "nothing was removed" in message
        assert holder.poll() is None
        assert result["refresh_lock"]["held"] is True
        human = run("--unstick-lock", "--stuck-threshold", "0").out
        assert f"kill {holder.pid}" in human


def test_stale_record_is_kd202_and_unstick_clears_it(home: Path) -> None:
    write_session(home)
    lock = home / "auth" / "refresh.lock"
    kill_holder_leaving_record(lock)
    assert lock.stat().st_size > 0
    doc = run("--json", "--stuck-threshold", "0").json()
    assert doc["refresh_lock"]["held"] is False
    assert doc["refresh_lock"]["stale_record"] is True
    assert _ids(doc) == ["KD202"]
    assert doc["exit_code"] == 0
    fix = doc["findings"][0]["remediation"]["command"]
    assert fix == "kitty-doctor --unstick-lock --stuck-threshold 0"
    # With the default threshold the fresh record is not worth a finding yet.
    assert _ids(run("--json").json()) == []
    # A threshold above the record's age clears nothing.
    kept = run("--json", "--unstick-lock").json()
    assert kept["repairs"]["unstick_lock"]["released"] is False
    assert lock.stat().st_size > 0
    cleared = run("--json", "--unstick-lock", "--stuck-threshold", "0").json()
    assert cleared["repairs"]["unstick_lock"] == {
        "released": True,
        "message": "cleared the stale lock record",
    }
    assert cleared["refresh_lock"]["record"] is None  # the report ran again after the repair
    assert _ids(cleared) == []
    assert lock.exists()
    assert lock.stat().st_size == 0


def test_unstick_on_a_young_record_says_its_age_and_how_to_clear_it_now(home: Path) -> None:
    """Issue 15: not "nothing to clear" — the record's age, when it becomes clearable, and the
    command that clears it now (which then works)."""
    import re
    import shlex

    lock = home / "auth" / "refresh.lock"
    kill_holder_leaving_record(lock)
    kept = run("--unstick-lock")
    flat = " ".join(kept.out.split())
    match = re.search(
        r"unstick lock: kept the stale record from pid \d+: it is (\d+) s old, younger than"
        r" --stuck-threshold 60 s; it becomes clearable in (\d+) s \(or clear it now:"
        r" (kitty-doctor --unstick-lock --stuck-threshold 0)\)",
        flat,
    )
    assert match is not None, kept.out
    assert int(match.group(1)) + int(match.group(2)) in (59, 60, 61)  # whole seconds, rounded
    assert lock.stat().st_size > 0
    cleared = run("--json", *shlex.split(match.group(3))[1:]).json()
    assert cleared["repairs"]["unstick_lock"]["released"] is True
    assert lock.stat().st_size == 0


def test_unstick_without_lock_file(home: Path) -> None:
    doc = run("--json", "--unstick-lock").json()
    assert doc["repairs"]["unstick_lock"] == {
        "released": False,
        "message": "no lock file; nothing to clear",
    }
    assert doc["refresh_lock"]["exists"] is False


# -- Daemon -------------------------------------------------------------------------------------


def _record(pid: int, port: int, started: float, version: str = "0.1.0") -> StateRecord:
    return StateRecord(
        family=DaemonFamily.SYNC,
        pid=pid,
        port=port,
        process_started_at=started,
        package_version=version,
        protocol_version=1,
        started_at="2025-05-01T10:00:01Z",
        instance_id="6f1d9c0e2b7a4c58a9e3d1f0b2c4a6e8",
        scope_id="x#y",
    )


def test_dead_recorded_pid_is_kd303_and_reset_removes_the_record(home: Path) -> None:
    write_session(home)
    with sleeper() as proc:
        started = psutil.Process(proc.pid).create_time()
        pid = proc.pid
    root = (home / "daemon").resolve()
    write_state(root, _record(pid, 20410, started))
    doc = run("--json", "--family", "sync").json()
    assert doc["daemons"]["sync"]["health"] == "dead"
    assert _ids(doc) == ["KD303"]
    after = run("--json", "--family", "sync", "--reset").json()
    entry = after["repairs"]["reset"]["recorded_daemons"]
    assert entry == [
        {
            "family": "sync",
            "pid": pid,
            "port": 20410,
            "action": "remove_stale_record",
            "result": "removed",
        }
    ]
    assert read_state(root, DaemonFamily.SYNC) is None
    assert after["daemons"]["sync"] is None
    assert _ids(after) == []


def test_reused_pid_is_kd303_and_the_process_is_never_signalled(home: Path) -> None:
    write_session(home)
    root = (home / "daemon").resolve()
    with sleeper() as proc:
        started = psutil.Process(proc.pid).create_time()
        write_state(root, _record(proc.pid, 20411, started - 1000.0))
        doc = run("--json", "--family", "sync").json()
        assert doc["daemons"]["sync"]["health"] == "reused"
        assert _ids(doc) == ["KD303"]
        run("--json", "--family", "sync", "--reset", "--force")
        assert proc.poll() is None  # someone else's process now: never touched
        assert read_state(root, DaemonFamily.SYNC) is None


def test_alive_but_unhealthy_is_kd302_and_needs_consent(home: Path) -> None:
    write_session(home)
    root = (home / "daemon").resolve()
    with sleeper(*marker_args(root, sys.executable)) as proc:
        started = psutil.Process(proc.pid).create_time()
        write_state(root, _record(proc.pid, 20412, started))  # nothing listens on 20412
        doc = run("--json", "--family", "sync").json()
        assert doc["daemons"]["sync"]["health"] == "unhealthy"
        assert doc["daemons"]["sync"]["health_error"] == "not listening on port 20412"
        assert _ids(doc) == ["KD302"]
        assert (
            doc["findings"][0]["remediation"]["command"]
            == "kitty-doctor --family sync --reset --force"
        )
        skipped = run("--json", "--family", "sync", "--reset").json()
        reset = skipped["repairs"]["reset"]
        assert reset["consent"] == "not_asked"
        assert reset["recorded_daemons"][0]["result"] == "skipped: needs consent (--force)"
        assert reset["hint"].endswith("to stop them: kitty-doctor --family sync --reset --force")
        assert proc.poll() is None
        forced = run("--json", "--family", "sync", "--reset", "--yes").json()
        assert forced["repairs"]["reset"]["consent"] == "forced"
        entry = forced["repairs"]["reset"]["recorded_daemons"][0]
        assert (entry["result"], entry["cleanup_path"]) == ("stopped", "terminate")
        # The in-process run's escalation reaps our child itself, so only "gone" is observable.
        proc.wait(timeout=10)
        assert not psutil.pid_exists(proc.pid)
        assert forced["daemons"]["sync"] is None
        assert read_state(root, DaemonFamily.SYNC) is None


@pytest.mark.parametrize("marker", ["none", "other_root"])
def test_a_state_record_alone_is_never_kill_authority(home: Path, marker: str) -> None:
    # Issue 10 §3: state.json naming any live process (pid + exact start time) got SIGTERM from
    # --reset --force. Only a process carrying this home's root marker may be signalled; a record
    # naming anything else is a wrong record, removed, and the process is left alone.
    write_session(home)
    root = (home / "daemon").resolve()
    extra = marker_args(home / "elsewhere", sys.executable) if marker == "other_root" else []
    with sleeper(*extra) as proc:
        started = psutil.Process(proc.pid).create_time()
        write_state(root, _record(proc.pid, 20414, started))  # nothing listens on 20414
        doc = run("--json", "--family", "sync").json()
        assert doc["daemons"]["sync"]["health"] == "foreign"
        assert _ids(doc) == ["KD303"]
        forced = run("--json", "--family", "sync", "--reset", "--force", "--yes").json()
        entry = forced["repairs"]["reset"]["recorded_daemons"][0]
        assert (entry["action"], entry["result"]) == ("remove_foreign_record", "removed")
        assert proc.poll() is None
        assert read_state(root, DaemonFamily.SYNC) is None


def test_a_squatter_on_the_recorded_port_is_an_impostor_and_gets_no_key(home: Path) -> None:
    # Issue 10 §1: our daemon released its port and lives on; another process binds the port and
    # answers health with the recorded identity. It must be named an impostor, never "healthy",
    # and no repair may send it the scope key.
    write_session(home)
    root = (home / "daemon").resolve()
    root.mkdir(parents=True, mode=0o700)
    key = ensure_scope_key(root)
    with sleeper(*marker_args(root, sys.executable)) as proc:
        started = psutil.Process(proc.pid).create_time()
        rec = replace(_record(proc.pid, 20415, started), scope_id=scope_id(root))
        write_state(root, rec)
        claim = {
            "schema_version": 1,
            "status": "ok",
            "daemon_family": "sync",
            "protocol_version": 1,
            "package_version": rec.package_version,
            "singleton_scope_id": rec.scope_id,
            "daemon_root": str(root),
            "pid": rec.pid,
            "port": rec.port,
            "process_started_at": rec.process_started_at,
            "started_at": rec.started_at,
            "busy": False,
            "idle_s": 0.0,
            "instance_id": rec.instance_id,
        }
        squatter = ThirdParty(20415, body=json.dumps(claim).encode())
        try:
            doc = run("--json", "--family", "sync").json()
            assert doc["daemons"]["sync"]["health"] == "impostor"
            assert "KD305" in _ids(doc)
            human = run("--family", "sync").out
            assert "impostor" in human
            assert "healthy" not in human.replace("unhealthy", "")
            forced = run("--json", "--family", "sync", "--reset", "--force", "--yes").json()
            entry = forced["repairs"]["reset"]["recorded_daemons"][0]
            assert entry["action"].startswith("stop_impostor")
            assert (entry["result"], entry["cleanup_path"]) == ("stopped", "terminate")
            proc.wait(timeout=10)
        finally:
            squatter.close()
        assert b"/api/shutdown" not in squatter.received
        assert key.encode() not in squatter.received


def test_doctor_status_words_are_the_sweeps_verdicts() -> None:
    from kitty_doctor._model import DaemonStatus
    from kitty_orphan_sweep import RecordedStatus

    assert [s.value for s in DaemonStatus] == [s.value for s in RecordedStatus]


def test_healthy_singleton_and_version_drift(home: Path, spawn: Callable[..., Daemon]) -> None:
    write_session(home)
    daemon = spawn(20413)
    rec = daemon.make_singleton()
    doc = run("--json", "--family", "sync").json()
    sync = doc["daemons"]["sync"]
    assert sync["health"] == "healthy"
    assert sync["recorded"]["pid"] == daemon.pid
    assert sync["version_drift"] is False
    assert doc["orphans"]["sync"] == []  # the singleton is reported under daemons only
    assert _ids(doc) == []
    drift = run("--json", "--family", "sync", "--expected-daemon-version", "9.9.9").json()
    assert drift["daemons"]["sync"]["version_drift"] is True
    assert _ids(drift) == ["KD301"]
    reset = run(
        "--json", "--family", "sync", "--expected-daemon-version", "9.9.9", "--reset"
    ).json()
    entry = reset["repairs"]["reset"]["recorded_daemons"][0]
    assert entry["result"] == "stopped", entry
    assert daemon.proc.wait(timeout=10) == 0  # authenticated shutdown, not a signal
    assert read_state(daemon.root, DaemonFamily.SYNC) is None
    assert reset["daemons"]["sync"] is None
    assert rec.pid == daemon.pid


def test_insecure_scope_key_is_kd304(home: Path) -> None:
    write_session(home)
    root = (home / "daemon").resolve()
    root.mkdir(parents=True, mode=0o700)
    ensure_scope_key(root)
    os.chmod(root / "scope.key", 0o644)
    doc = run("--json").json()
    assert doc["scope_key"] == {
        "daemon_root": str(root),
        "path": str(root / "scope.key"),
        "exists": True,
        "secure": False,
    }
    assert _ids(doc) == ["KD304"]
    assert doc["findings"][0]["remediation"]["command"] == f"chmod 600 {root}/scope.key"


def test_out_of_range_recorded_port_is_not_probed(home: Path) -> None:
    write_session(home)
    root = (home / "daemon").resolve()
    with sleeper(*marker_args(root, sys.executable)) as proc:
        started = psutil.Process(proc.pid).create_time()
        write_state(root, replace(_record(proc.pid, 9401, started)))
        doc = run("--json", "--family", "sync").json()
    assert doc["daemons"]["sync"]["health"] == "unverified"
    assert "outside" in doc["daemons"]["sync"]["health_error"]
    assert _ids(doc) == []
