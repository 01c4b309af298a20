"""Helpers for kitty-doctor tests: facts builders, the schema validator, in-process runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema

from kitty_auth_refresh import Session, SessionStore
from kitty_doctor._cli import click_main, main_with_args
from kitty_doctor._findings import FindingContext
from kitty_doctor._model import (
    DaemonFacts,
    DaemonsFacts,
    DaemonStatus,
    IdentityFacts,
    LockFacts,
    LockRecordFacts,
    OrphansFacts,
    RecordedDaemon,
    ScopeKeyFacts,
    StorageFacts,
    TokenFacts,
)

ACCESS_TOKEN = "kd-marker-access-7f3a9c51e0"
REFRESH_TOKEN = "kd-marker-refresh-2b8e1d44aa"
NOW = dt.datetime(2025, 5, 1, 10, 5, tzinfo=dt.UTC)

SCHEMA: dict[str, Any] = json.loads(
    files("kitty_doctor").joinpath("schema/doctor-report.schema.json").read_text("utf-8")
)
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def validate(doc: object) -> None:
    """Raise if `doc` is not a valid report or error envelope (DOC-09)."""
    _VALIDATOR.validate(doc)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> dict[str, Any]:
        """The single JSON document on stdout, schema-validated."""
        assert self.out.endswith("\n")
        assert self.out.count("\n") == 1, self.out
        doc: dict[str, Any] = json.loads(self.out)
        validate(doc)
        return doc


def run(*args: str) -> Result:
    """Run the CLI in-process (same code path as the console script, minus interpreter start)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main_with_args(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def run_click(*args: str) -> Result:
    """`run`, but parsed by the typer command even where the fast parser would have parsed it
    (both paths must map every outcome the same way)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = click_main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


def run_process(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """Run `python -m kitty_doctor` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "kitty_doctor", *args],
        capture_output=True,
        text=True,
        env=env if env is not None else dict(os.environ),
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_session(home: Path, **overrides: Any) -> Session:
    fields: dict[str, Any] = {
        "session_id": "sess-9f2",
        "access_token": ACCESS_TOKEN,
        "refresh_token": REFRESH_TOKEN,
        "access_expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30),
        "issued_at": dt.datetime.now(dt.UTC),
        "refresh_expires_at": None,
        "scope": "openid offline_access",
        "token_type": "Bearer",
        "subject": "user-1",
        "email": "a@example.com",
    }
    fields.update(overrides)
    session = Session(**fields)
    SessionStore(home / "auth").write(session)
    return session


# -- facts builders for the pure engine ---------------------------------------------------------

CTX = FindingContext(session_path="/h/auth/session.json")

IDENTITY_OK = IdentityFacts("authenticated", "user-1", "a@example.com", "1a2b3c4d")
TOKENS_OK = TokenFacts(True, 1800.0, None, "2025-05-01T10:00:00Z", "openid", "Bearer")
STORAGE_OK = StorageFacts(
    path="/h/auth/session.json",
    exists=True,
    size=612,
    mode=0o600,
    owner_ok=True,
    dir_path="/h/auth",
    dir_mode=0o700,
    home_path="/h",
    home_mode=0o700,
    parse="ok",
    corrupt_reason=None,
)
LOCK_FREE = LockFacts(
    path="/h/auth/refresh.lock",
    exists=True,
    held=False,
    holder_pid=None,
    holder_source=None,
    holder_cmdline=None,
    record=None,
    stale_record=False,
    mode="flock",
    fs_type="ext4",
    network_fs=False,
    this_host="devbox",
    stuck_threshold_s=60.0,
)
RECORD = LockRecordFacts(4242, "devbox", "2025-05-01T10:03:45Z", 75.2, "refresh", 10.0)
RECORDED = RecordedDaemon(5150, 9401, "0.4.0", 1, "2025-05-01T10:00:01Z", 1746093600.52)
SCOPE_KEY_OK = ScopeKeyFacts("/h/daemon/scope.key", True, True)


def daemon(status: DaemonStatus = DaemonStatus.HEALTHY, **kw: Any) -> DaemonFacts:
    base = DaemonFacts(
        family="sync",
        state_path="/h/daemon/state.json",
        recorded=RECORDED,
        status=status,
        health_error=None,
        health_package_version="0.4.0",
        expected_version="0.4.0",
        busy=False,
        idle_s=42.0,
    )
    return replace(base, **kw)


def daemons(sync: DaemonFacts | None = None, key: ScopeKeyFacts = SCOPE_KEY_OK) -> DaemonsFacts:
    return DaemonsFacts("/h/daemon", ("sync", "dashboard"), {"sync": sync, "dashboard": None}, key)


def orphan(port: int, klass: str, reason: str | None = None, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "daemon_family": "sync",
        "port": port,
        "pid": 6000 + port % 100,
        "process_started_at": 1746093700.0,
        "protocol_version": 1,
        "package_version": "3.2.2",
        "singleton_scope_id": "/h/daemon#3b9f0c7a5d12e4f8",
        "daemon_root": "/h/daemon",
        "connect_state": "open",
        "health_status": "ok",
        "identity_source": "health_self_report",
        "executable_summary": "/usr/bin/python3",
        "spawn_shape_ok": True,
        "self_report_matches_listener": True,
        "start_time_matches": True,
        "is_recorded_singleton": False,
        "stale_version": True,
        "busy": False,
        "idle_s": 12.0,
        "cleanup_class": klass,
        "skip_reason": reason,
        "evidence": ["stale_version:3.2.2!=0.4.0"],
        "process": process(),
    }
    rec.update(kw)
    return rec


def process(**kw: Any) -> dict[str, Any]:
    """The review facts the collector adds to an orphan entry (owner, age, root, command)."""
    facts: dict[str, Any] = {
        "uid": 1000,
        "user": "alice",
        "age_s": 7300.0,
        "cmdline": "python3 -m kitty_daemon_identity --port 20404",
        "root": None,
        "root_exists": None,
        "yours": True,
    }
    facts.update(kw)
    return facts


def orphans(*records: dict[str, Any]) -> OrphansFacts:
    return OrphansFacts(("sync", "dashboard"), {"sync": tuple(records), "dashboard": ()})
