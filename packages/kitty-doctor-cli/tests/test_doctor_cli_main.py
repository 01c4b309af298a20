"""The command line: flags, exit codes (DOC-10), output discipline (DOC-08), versions (DOC-14)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import kitty_doctor._run as _run
import kitty_orphan_sweep
from _doctorkit import ACCESS_TOKEN, Result, run, run_click, run_process, write_session
from kitty_doctor._exit import ExitCode


def test_fresh_home_is_kd101_and_exit_1(home: Path) -> None:
    result = run()
    assert result.code == ExitCode.CRITICAL
    assert int(ExitCode.CRITICAL) == 1
    assert "KD101 no_session" in result.out
    assert result.out.rstrip().endswith("1 critical, 0 warnings, 0 info")
    assert result.err == ""
    doc = run("--json").json()
    assert doc["exit_code"] == 1
    assert [f["id"] for f in doc["findings"]] == ["KD101"]
    assert doc["home"] == {"path": str(home), "source": "env", "exists": False}


def test_logged_in_home_is_exit_0(home: Path) -> None:
    write_session(home)
    result = run()
    assert result.code == ExitCode.OK
    assert "authenticated as user-1 <a@example.com>" in result.out
    assert result.out.rstrip().endswith("0 critical, 0 warnings, 0 info")
    doc = run("--json").json()
    assert doc["exit_code"] == 0
    assert doc["identity"]["state"] == "authenticated"
    assert doc["identity"]["session_hash"] is not None
    assert 1700 < doc["tokens"]["access_expires_in_s"] <= 1800
    assert doc["tokens"]["refresh_server_managed"] is True
    assert doc["storage"]["mode"] == "0600"


def test_home_flag_overrides_env(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_session(other)
    doc = run("--json", "--home", str(other)).json()
    assert doc["home"] == {"path": str(other), "source": "flag", "exists": True}
    assert doc["exit_code"] == 0


def test_default_home_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KITTY_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    doc = run("--json").json()
    assert doc["home"] == {"path": str(tmp_path / ".kitty"), "source": "default", "exists": False}


@pytest.mark.parametrize(
    ("flag", "families"),
    [("sync", ["sync"]), ("dashboard", ["dashboard"]), ("all", ["sync", "dashboard"])],
)
def test_family_selects_sections(home: Path, flag: str, families: list[str]) -> None:
    doc = run("--json", "--family", flag).json()
    assert list(doc["daemons"]) == families
    assert list(doc["orphans"]) == families


def test_version_prints_all_five_packages() -> None:
    result = run("--version")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("kitty-doctor ")
    names = [line.split()[0] for line in lines[1:]]
    assert names == [
        "kitty-filelock",
        "kitty-auth-refresh",
        "kitty-daemon-identity",
        "kitty-orphan-sweep",
        "kitty-doctor-cli",
    ]


def test_help_is_exit_0() -> None:
    result = run("--help")
    assert result.code == 0
    for flag in (
        "--json",
        "--reset",
        "--force",
        "--yes",
        "--unstick-lock",
        "--home",
        "--family",
        "--login-command",
        "--expected-daemon-version",
        "--stuck-threshold",
        "--verbose",
        "--version",
    ):
        assert flag in result.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bogus"], "--bogus"),
        (["--family", "weekly"], "weekly"),
        (["--stuck-threshold", "soon"], "soon"),
        (["--force"], "--force/--yes only make sense with --reset"),
        (["--yes", "--unstick-lock"], "--force/--yes only make sense with --reset"),
        (["extra-arg"], "extra-arg"),
    ],
)
def test_usage_errors_are_exit_2_in_both_modes(home: Path, args: list[str], needle: str) -> None:
    human = run(*args)
    assert human.code == ExitCode.ERROR
    assert int(ExitCode.ERROR) == 2
    assert human.out == ""
    assert needle in human.err
    assert human.err.count("\n") == 1
    # --verbose would add nothing here; the fix is in --help.
    assert human.err.endswith(" (see kitty-doctor --help)\n")
    assert "--verbose for details" not in human.err
    doc = run(*args, "--json").json()
    assert doc["exit_code"] == 2
    assert doc["error"]["type"] == "usage_error"
    assert needle in doc["error"]["message"]


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("KITTY_HOME", "relative/home", "KITTY_HOME"),
        ("KITTY_SYNC_PORTS", "9400-banana", "KITTY_SYNC_PORTS"),
        ("KITTY_DASHBOARD_PORTS", "20400-20460", "KITTY_DASHBOARD_PORTS"),  # overlaps sync
    ],
)
def test_configuration_errors_are_exit_2(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(env, value)
    human = run()
    assert human.code == 2
    assert needle in human.err
    assert value in human.err
    assert "Traceback" not in human.err
    doc = run("--json").json()
    assert doc["error"]["type"] == "config_error"
    assert needle in doc["error"]["message"]
    verbose = run("--verbose")
    assert "Traceback" in verbose.err


def test_config_error_names_the_bad_variable_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # --family sync still validates the dashboard override (the ranges must not overlap): the
    # message must blame the dashboard variable, not the sync one the user never touched.
    monkeypatch.setenv("KITTY_DASHBOARD_PORTS", "x")
    human = run("--family", "sync")
    assert human.code == 2
    assert human.err.startswith("kitty-doctor: invalid KITTY_DASHBOARD_PORTS 'x': ")
    assert "KITTY_SYNC_PORTS" not in human.err
    # said once, not "invalid X 'x': X='x' is invalid: ..."
    assert human.err.count("KITTY_DASHBOARD_PORTS") == 1
    monkeypatch.delenv("KITTY_DASHBOARD_PORTS")
    monkeypatch.setenv("KITTY_HOME", "rel/home")
    doc = run("--json").json()
    message = doc["error"]["message"]
    assert message.startswith("invalid KITTY_HOME 'rel/home': ")
    assert message.count("KITTY_HOME") == 1


@pytest.mark.parametrize("value", ["", " "])
def test_empty_home_flag_is_refused_not_the_current_directory(home: Path, value: str) -> None:
    # `kitty-doctor --home "$UNSET"` must not quietly diagnose (or --reset) the cwd.
    human = run("--home", value)
    assert human.code == 2
    assert human.out == ""
    assert human.err.startswith(f"kitty-doctor: invalid --home {value!r}: give a directory path")
    doc = run("--json", "--home", value, "--reset").json()
    assert doc["error"]["type"] == "config_error"


def test_home_that_is_a_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "home-file"
    not_a_dir.write_text("oops\n")
    monkeypatch.setenv("KITTY_HOME", str(not_a_dir))
    human = run()
    assert human.code == 2
    assert human.out == ""
    assert human.err.count("\n") == 1
    assert f"invalid KITTY_HOME '{not_a_dir}': it exists but is not a directory" in human.err
    assert "crashed" not in human.err
    doc = run("--json").json()
    assert doc["error"]["type"] == "config_error"
    monkeypatch.delenv("KITTY_HOME")
    flag = run("--json", "--home", str(not_a_dir)).json()
    assert flag["error"]["message"].startswith(f"invalid --home '{not_a_dir}'")
    assert not_a_dir.read_text() == "oops\n"  # looked at, never touched


@pytest.mark.parametrize("entry", ["auth", "daemon"])
def test_auth_or_daemon_entry_that_is_a_file_is_a_config_error(home: Path, entry: str) -> None:
    # Otherwise: KD102 "mv auth/session.json ..." and KD105 "chmod 700 auth" (a file), or
    # crashed sections; none of which the user can act on.
    home.mkdir(mode=0o700)
    (home / entry).write_text("")
    human = run()
    assert human.code == 2
    assert human.out == ""
    assert human.err.startswith(
        f"kitty-doctor: invalid KITTY_HOME '{home}': {home / entry} exists but is not a"
        " directory; move it aside"
    )
    assert run("--json").json()["error"]["type"] == "config_error"


def test_home_in_a_symlink_loop_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    monkeypatch.setenv("KITTY_HOME", str(loop))
    human = run()
    assert human.code == 2
    assert "it cannot be used (Too many levels of symbolic links)" in human.err
    assert "crashed" not in human.err + human.out


@pytest.mark.parametrize("value", ["-1", "inf", "nan", "1e400"])
def test_negative_or_non_finite_threshold_is_a_config_error(home: Path, value: str) -> None:
    doc = run("--json", "--stuck-threshold", value).json()
    assert doc["error"]["type"] == "config_error"
    assert "--stuck-threshold" in doc["error"]["message"]
    human = run("--stuck-threshold", value)
    assert human.code == 2
    assert human.out == ""
    assert "finite number of seconds" in human.err


def test_crashed_section_is_kd901_exit_2_and_others_still_render(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_session(home)

    def boom(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError("scanner exploded")

    monkeypatch.setattr(kitty_orphan_sweep, "scan_listeners", boom)
    doc = run("--json").json()
    assert doc["exit_code"] == 2
    assert doc["orphans"] is None
    assert doc["sections"]["orphans"]["status"] == "crashed"
    assert doc["sections"]["orphans"]["error"] == "RuntimeError: scanner exploded"
    assert doc["identity"]["state"] == "authenticated"  # the others still ran
    assert doc["daemons"] is not None
    assert [f["id"] for f in doc["findings"]] == ["KD901"]
    human = run()
    assert human.code == 2
    assert "Orphans\n  ✗ crashed: RuntimeError: scanner exploded" in human.out
    assert "authenticated as user-1" in human.out
    assert "Traceback" not in human.err
    verbose = run("--verbose")
    assert "Traceback" in verbose.err
    assert "scanner exploded" in verbose.err
    json_verbose = run("--json", "--verbose")
    assert json_verbose.json()["exit_code"] == 2
    assert "scanner exploded" in json_verbose.err


def test_crashing_findings_engine_still_reports_kd901(home: Path) -> None:
    from kitty_doctor._config import resolve_config
    from kitty_doctor._document import report_document
    from kitty_doctor._redact import Redactor
    from kitty_doctor._report import Collectors, build_report

    def broken_engine(**kwargs: object) -> tuple[()]:
        raise ValueError("engine bug")

    cfg = resolve_config(
        home=None,
        family="all",
        stuck_threshold_s=60.0,
        expected_daemon_version=None,
        login_command=None,
    )
    report = build_report(
        cfg,
        tool_version="0.1.0",
        packages={},
        redactor=Redactor(),
        collectors=Collectors(findings=broken_engine),
    )
    assert report.exit_code == 2
    assert [f.id for f in report.findings] == ["KD901"]
    assert "engine bug" in report.findings[0].summary
    doc = report_document(report)
    assert doc["sections"]["findings"]["status"] == "crashed"
    assert doc["identity"]["state"] == "not_authenticated"


@pytest.mark.parametrize("run", [run, run_click], ids=["fast_parser", "click"])
def test_internal_error_is_exit_2_with_envelope(
    home: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Result]
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise LookupError("wiring bug")

    monkeypatch.setattr(_run, "run", broken)
    human = run()
    assert human.code == 2
    assert human.err == (
        "kitty-doctor: internal error: LookupError: wiring bug"
        " (re-run with --verbose for details)\n"
    )
    doc = run("--json").json()
    assert doc["error"] == {
        "type": "internal_error",
        "message": "internal error: LookupError: wiring bug",
    }
    verbose = run("--verbose")
    assert "Traceback (most recent call last)" in verbose.err


def test_fatal_error_after_the_session_was_read_never_shows_a_token(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DOC-11 covers error messages too: a failure while printing (after the tokens were read)
    # must not echo one in the one-line error, the JSON envelope or the --verbose traceback.
    import kitty_doctor._render

    write_session(home)

    def leaky(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"cannot print near {ACCESS_TOKEN}")

    monkeypatch.setattr(kitty_doctor._render, "render", leaky)
    monkeypatch.setattr(_run, "report_document", leaky)
    for args in ([], ["--verbose"], ["--json"], ["--json", "--verbose"]):
        result = run(*args)
        assert result.code == 2
        assert "cannot print near ***" in result.out + result.err
        assert ACCESS_TOKEN not in result.out + result.err


@pytest.mark.parametrize("run", [run, run_click], ids=["fast_parser", "click"])
def test_interrupt_is_exit_2_not_130(
    home: Path, monkeypatch: pytest.MonkeyPatch, run: Callable[..., Result]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_run, "run", interrupted)
    human = run()
    assert human.code == 2
    assert human.err == "kitty-doctor: interrupted\n"  # no "--verbose" advice for a Ctrl-C
    doc = run("--json").json()
    assert doc["error"]["type"] == "interrupted"


_IMPORT_PROBE = """
import contextlib, io, json, sys
from kitty_doctor._cli import main_with_args
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    rc = main_with_args(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m == "rich" or m.startswith("rich."))
print(json.dumps({"rc": rc, "rich": loaded, "out": buf.getvalue()}))
"""


def _imports_for(*args: str) -> dict[str, object]:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_json_mode_never_imports_rich(home: Path) -> None:
    result = _imports_for("--json", "--family", "sync")
    assert result["rc"] == 1
    assert result["rich"] == []
    # The probe itself is sound: human mode does load rich in the same harness.
    human = _imports_for("--family", "sync")
    assert "rich.console" in human["rich"]  # type: ignore[operator]  # a list of names


def test_real_command_in_json_mode_loads_no_rich(home: Path) -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kitty_doctor", "--json", "--family", "sync"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "kitty_auth_refresh" in imported  # the probe sees the whole import tree
    assert "rich" not in imported
    # httpx is imported lazily by kitty-auth-refresh (its CLI would pull in click and pygments).
    assert "httpx" not in imported
    assert "click" not in imported
    assert "pygments" not in imported


def test_console_script_runs_as_a_real_process(home: Path) -> None:
    result = run_process("--json", "--family", "sync")
    assert result.code == 1
    assert result.json()["exit_code"] == 1
    assert result.err == ""


def test_main_entry_point_exits_with_the_code(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kitty_doctor.__main__ import main

    monkeypatch.setattr(sys, "argv", ["kitty-doctor", "--json", "--family", "sync"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 1


@pytest.mark.parametrize("args", [[], ["--json"], ["--version"], ["--help"]])
def test_closed_stdout_is_a_clean_exit_2(home: Path, args: list[str]) -> None:
    import os
    import subprocess

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the child even starts
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "kitty_doctor", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 2  # not click's 1
    if args != ["--help"]:  # click reports its own EPIPE for --help (and exits; mapped to 2)
        assert proc.stderr == "kitty-doctor: output closed before the report was complete\n"


def test_short_help_lists_exit_codes_and_environment() -> None:
    result = run("-h")
    assert result.code == 0
    text = " ".join(result.out.split())
    assert "Exit codes: 0 nothing critical; 1 at least one critical finding; 2" in text
    for variable in (
        "KITTY_HOME",
        "KITTY_SYNC_PORTS",
        "KITTY_DASHBOARD_PORTS",
        "KITTY_LOGIN_COMMAND",
    ):
        assert variable in text


@pytest.mark.parametrize("how", ["flag", "env"])
def test_relative_home_is_refused_the_same_way_from_flag_and_env(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how == "flag":
        result = run("--home", "relative/dir")
    else:
        monkeypatch.setenv("KITTY_HOME", "relative/dir")
        result = run()
    assert result.code == 2
    assert "'relative/dir': it must be an absolute path" in result.err
    assert result.err.rstrip().endswith("(see kitty-doctor --help)")
    assert "--verbose" not in result.err
