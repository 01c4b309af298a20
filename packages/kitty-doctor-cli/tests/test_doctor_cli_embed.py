"""The doctor as a library (issue 13): another CLI's profile, mounted with `add_typer`, built and
rendered as calls, re-worded by finding ID, and never showing kitty's brand to that CLI's users.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from _doctorkit import REFRESH_TOKEN, validate, write_session
from _procs import read_line, reap
from kitty_daemon_identity import AppProfile, Family, PortRange, StateRecord, write_state
from kitty_doctor import (
    FINDING_TEXTS,
    ExitCode,
    Finding,
    Remediation,
    Report,
    Severity,
    build_report,
    check_texts,
    doctor_app,
    render_report,
    report_document,
    run_repairs,
)

#: Inside this package's reserved block (20400-20599), beside the kitty ranges conftest sets.
ACME = AppProfile(
    name="acme",
    families=(
        Family("sync", PortRange(20560, 20570), "2.0.0"),
        Family("jobs", PortRange(20570, 20580), "2.0.0"),
    ),
    login_command="acme login",
)
COMMAND = "acme auth doctor"
FIX = Remediation(None, "report it")


@pytest.fixture
def acme_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "acme"
    monkeypatch.setenv("ACME_HOME", str(home))
    return home


def _host() -> typer.Typer:
    """acme's CLI, the way its maintainer writes it: `acme auth login`, `acme auth doctor`."""
    app = typer.Typer()
    auth = typer.Typer()
    app.add_typer(auth, name="auth")

    @auth.command()
    def login() -> None:
        """Log in to acme."""

    auth.add_typer(
        doctor_app(ACME, command=COMMAND, version="2.0.0", packages={"acme": "2.0.0"}),
        name="doctor",
    )
    return app


def _acme(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(_host(), ["auth", "doctor", *args], prog_name="acme")
    return result.exit_code, result.stdout, result.stderr


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _stale_record(home: Path, family: str = "sync") -> None:
    fam = ACME.family(family)
    record = StateRecord(
        family=family,
        pid=_dead_pid(),
        port=fam.ports.start,
        process_started_at=time.time() - 60,
        package_version="2.0.0",
        protocol_version=fam.protocol_version,
        started_at="2026-12-01T00:00:00Z",
        instance_id="i-1",
        scope_id="s-1",
    )
    write_state(ACME.daemon_root(home), record, fam)


LISTENER = """
import socket, sys
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def listener() -> Iterator[int]:
    """A silent TCP listener in acme's jobs range: another program's, never touched."""
    port = 20575
    proc = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(proc) == "listening\n"
        yield port
    finally:
        reap(proc)


def _no_kitty(text: str) -> None:
    """No kitty word in acme's output. The machine's own paths are blanked first: a checkout, a
    venv or a temporary directory may be named kitty (CI's nox venv is), and that is not our brand.
    """
    for path in sorted(
        {sys.prefix, sys.base_prefix, tempfile.gettempdir(), str(Path.cwd())}, key=len, reverse=True
    ):
        text = text.replace(path, "<path>")
    assert "kitty" not in text.lower(), text


def test_mounted_doctor_is_acme_auth_doctor_with_acme_words(acme_home: Path) -> None:
    code, out, _ = _acme("--help")
    assert code == 0
    assert "Usage: acme auth doctor [OPTIONS]" in out
    assert "[OPTIONS] COMMAND" not in out
    assert "doctor doctor" not in out
    assert "Explain acme's local state" in out
    assert "ACME_HOME" in out
    assert "ACME_SYNC_PORTS" in out
    assert "ACME_JOBS_PORTS" in out
    assert "<sync|jobs|all>" in out
    _no_kitty(out)


def test_exit_codes_pass_through_the_host(acme_home: Path, listener: int) -> None:
    # 1: not logged in (KD101 is critical); the remediation is acme's login command.
    code, out, _ = _acme("--verbose")
    assert code == ExitCode.CRITICAL
    assert "KD101 no_session: no acme session at" in out
    assert "→ acme login" in out
    assert "not an acme daemon (no acme health answer)" in out  # the listener, in --verbose
    _no_kitty(out)
    # 0: logged in.
    write_session(acme_home)
    code, out, _ = _acme()
    assert code == ExitCode.OK, out
    _no_kitty(out)
    assert REFRESH_TOKEN not in out


def test_json_is_the_schema_document_with_acme_as_the_tool(acme_home: Path, listener: int) -> None:
    _stale_record(acme_home)
    code, out, _ = _acme("--json")
    assert code == ExitCode.CRITICAL
    doc: dict[str, Any] = json.loads(out)
    validate(doc)
    assert doc["tool"] == {"name": COMMAND, "version": "2.0.0", "packages": {"acme": "2.0.0"}}
    assert doc["families"] == ["sync", "jobs"]
    assert doc["ranges"] == {"sync": [20560, 20570], "jobs": [20570, 20580]}
    by_id = {f["id"]: f for f in doc["findings"]}
    # Remediations repeat acme's doctor command, never kitty's.
    assert by_id["KD303"]["remediation"]["command"] == "acme auth doctor --reset"
    assert [o["port"] for o in doc["orphans"]["jobs"]] == [listener]
    _no_kitty(out)


def test_the_error_envelope_and_usage_errors_name_acme(acme_home: Path) -> None:
    code, out, _ = _acme("--json", "--home", "relative/dir")
    assert code == ExitCode.ERROR
    doc = json.loads(out)
    validate(doc)
    assert doc["error"]["type"] == "config_error"
    assert ".acme" in doc["error"]["message"]
    code, _, err = _acme("--force")
    assert code == ExitCode.ERROR
    assert err.startswith("acme auth doctor: --force/--yes only make sense with --reset")
    assert "see acme auth doctor --help" in err
    code, out, err = _acme("--family", "sync", "--version")
    assert (code, out) == (0, "acme auth doctor 2.0.0\nacme 2.0.0\n")


def test_reset_removes_a_stale_acme_record(acme_home: Path) -> None:
    _stale_record(acme_home, "jobs")
    assert ACME.family("jobs").state_path(ACME.daemon_root(acme_home)).exists()
    code, out, _ = _acme("--reset", "--family", "jobs")
    assert "recorded jobs daemon pid" in out
    assert "record removed" in out
    assert not ACME.family("jobs").state_path(ACME.daemon_root(acme_home)).exists()
    assert code == ExitCode.CRITICAL  # still not logged in
    _no_kitty(out)


def test_build_render_and_repair_as_calls(acme_home: Path) -> None:
    _stale_record(acme_home)
    report = build_report(ACME, command=COMMAND)
    assert isinstance(report, Report)
    assert report.exit_code == 1
    assert [f.id for f in report.findings] == ["KD101", "KD303"]
    stale = report.findings[1]
    assert stale.params["family"] == "sync"
    assert stale.params["app"] == "acme"
    assert report_document(report)["tool"]["name"] == COMMAND
    buffer = io.StringIO()
    render_report(report, Console(file=buffer, width=60, no_color=True))
    text = buffer.getvalue()
    # Wrapped at the console's 60 columns, between words (the home's path is one word).
    assert text.splitlines()[:2] == [f"{COMMAND} 2.0.0  home", f"  {acme_home}"]
    _no_kitty(text)
    repairs = run_repairs(ACME, reset=True, command=COMMAND)
    assert repairs.reset is not None
    recorded = repairs.reset["recorded_daemons"]
    assert isinstance(recorded, list)
    assert [e["result"] for e in recorded] == ["removed"]
    after = build_report(ACME, command=COMMAND, repairs=repairs)
    assert [f.id for f in after.findings] == ["KD101"]


def test_render_report_masks_what_the_run_saw(acme_home: Path) -> None:
    write_session(acme_home)
    report = build_report(ACME)
    # Text that quotes a token the run read (a holder's command line, a crash message) is
    # masked on the way to the console, whatever the report holds.
    leaky = Finding("KD901", "section_crashed", Severity.CRITICAL, f"boom {REFRESH_TOKEN}", FIX)
    buffer = io.StringIO()
    render_report(replace(report, findings=(leaky,)), Console(file=buffer, no_color=True))
    assert "boom " in buffer.getvalue()
    assert REFRESH_TOKEN not in buffer.getvalue()


def test_an_app_rewords_a_finding_by_id(acme_home: Path) -> None:
    texts = {"KD101": "you are not signed in to {app} (looked in {path})"}
    report = build_report(ACME, texts=texts)
    (finding,) = report.findings
    assert finding.id == "KD101"
    assert finding.name == "no_session"
    assert finding.summary == (
        f"you are not signed in to acme (looked in {acme_home / 'auth' / 'session.json'})"
    )
    assert report_document(report)["findings"][0]["summary"] == finding.summary


@pytest.mark.parametrize(
    ("texts", "complaint"),
    [
        ({"KD999": "x"}, "no finding 'KD999'"),
        ({"KD101": "no session for {user}"}, "uses user; it may use only {app}, {path}"),
        ({"KD101": "{path!r}"}, "a format spec or conversion"),
        ({"KD101": "{path:>40}"}, "a format spec or conversion"),
        ({"KD101": "unclosed {path"}, "is not a template"),
    ],
)
def test_a_bad_wording_fails_when_the_app_builds_its_doctor(
    texts: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint.replace("{", r"\{").replace("}", r"\}")):
        doctor_app(ACME, texts=texts)
    with pytest.raises(ValueError, match="KD"):
        check_texts(texts)


def test_every_default_text_fills_from_its_own_fields() -> None:
    assert set(FINDING_TEXTS) == {
        *(f"KD10{i}" for i in range(1, 7)),
        *(f"KD20{i}" for i in range(1, 5)),
        *(f"KD30{i}" for i in range(1, 6)),
        "KD401",
        "KD402",
        "KD403",
        "KD901",
    }
    assert check_texts(dict(FINDING_TEXTS)) == dict(FINDING_TEXTS)


def test_kittys_own_report_keeps_its_words(home: Path) -> None:
    report = build_report()
    assert report.brand.tool == "kitty-doctor"
    assert report.findings[0].summary.startswith("no kitty session at ")
    assert set(report.packages) >= {"kitty-doctor-cli", "kitty-filelock"}
