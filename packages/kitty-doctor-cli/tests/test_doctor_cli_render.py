# ruff: noqa: E501  (the golden text is the report verbatim; its lines are as long as the report's)
"""Human output: golden text for a representative report, marks, colour rules, durations."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console

from _doctorkit import CTX, STORAGE_OK, TOKENS_OK
from _reports import representative
from kitty_doctor._durations import humanize_age, humanize_remaining
from kitty_doctor._model import (
    HomeFacts,
    HomeSource,
    Repairs,
    SectionName,
    SectionResult,
    SectionStatus,
    UnstickResult,
)
from kitty_doctor._render import render

GOLDEN = """\
kitty-doctor 0.1.0  home /h
  scanned ports sync 20400-20450, dashboard 20450-20550

Identity
  ✓ authenticated as user-1 <a@example.com> (session 1a2b3c4d)
      home /h (default)
Tokens
  ✓ access token: 30 minutes left
  ✓ refresh token: server-managed
      issued at 2025-05-01T10:00:00Z, scope openid, type Bearer
Storage
  ✓ /h/auth/session.json: parses ok
      612 bytes, mode 0600, dir mode 0700, owner ok
Refresh lock
  ✗ held by pid 4242 (python worker.py) for 1 minute
      holder from the kernel's lock table; record pid 4242 on devbox, label refresh
      acquired 2025-05-01T10:03:45Z, max hold 10 s
      /h/auth/refresh.lock; flock on ext4; stuck after 60 s
Daemon
  ✓ sync: pid 5150 port 9401 v0.4.0 healthy (idle < 1 minute)
    dashboard: no state record
Orphans
  ! sync port 20403 pid 6003 v3.2.2: kitty's own, safe to stop
  ! sync port 20404 pid 6004 v3.2.2: needs your review: no kitty marker: started before kitty 0.1, or by hand
      owner alice, up 2 hours, no root marker
      command python3 -m kitty_daemon_identity --port 20404
      1 other listener kitty never touches (--verbose lists them)
  ✓ dashboard: no orphans
Findings
  ✗ KD201 lock_stuck: refresh lock held by pid 4242 (python worker.py) for 75 s, longer than its max hold of 10 s + 5 s grace
      → kill 4242  (stop the process that holds the lock; --unstick-lock cannot free a held lock)
  ! KD401 orphans_safe_auto: 1 orphan daemon kitty can stop safely (port 20403)
      → kitty-doctor --reset  (stop safe orphans)
  ! KD402 orphans_operator_required: 1 daemon kitty cannot prove safe to stop (port 20404: no kitty marker: started before kitty 0.1, or by hand)
      → kitty-doctor --reset --force  (review them, then stop them)

1 critical, 2 warnings, 0 info
"""


def _text(report: object, *, verbose: bool = False, **console_kw: object) -> str:
    buf = io.StringIO()
    kw: dict[str, object] = {"width": 100, "highlight": False}
    kw.update(console_kw)
    render(report, Console(file=buf, **kw), verbose=verbose)  # type: ignore[arg-type]  # kw is Console's
    return buf.getvalue()


def test_golden_representative_report() -> None:
    assert _text(representative()) == GOLDEN


def test_verbose_lists_never_touch_rows() -> None:
    text = _text(representative(), verbose=True)
    assert "sync port 20405 pid 7001: never touched: not a kitty daemon" in text
    assert "kitty never touches" not in text


def test_no_colour_when_not_a_tty_or_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" not in _text(representative())  # StringIO is not a TTY
    coloured = _text(representative(), force_terminal=True, color_system="standard")
    assert "\x1b[" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    no_color = _text(representative(), force_terminal=True, color_system="standard")
    assert "\x1b[3" not in no_color  # no foreground colours, whatever bold/dim styles remain


def test_crashed_section_renders_and_others_still_do() -> None:
    sections = tuple(
        SectionResult(n, SectionStatus.CRASHED, 1.0, error="OSError: disk on fire")
        if n is SectionName.STORAGE
        else SectionResult(n, SectionStatus.OK, 1.0)
        for n in SectionName
    )
    text = _text(replace(representative(storage=None), sections=sections))
    assert "Storage\n  ✗ crashed: OSError: disk on fire (re-run with --verbose for details)" in text
    assert "authenticated as user-1" in text
    assert "healthy" in text
    verbose = io.StringIO()
    render(
        replace(representative(storage=None), sections=sections),
        Console(file=verbose, width=200, no_color=True),
        verbose=True,
    )
    assert "✗ crashed: OSError: disk on fire (traceback on stderr)" in verbose.getvalue()
    assert "re-run with --verbose" not in verbose.getvalue()


REPAIRS_RESET: dict[str, object] = {
    "swept": [
        {"port": 20403, "pid": 6003, "cleanup_class": "safe_auto", "cleanup_path": "http_shutdown"}
    ],
    "skipped": [
        {
            "port": 20404,
            "pid": 6004,
            "cleanup_class": "operator_required",
            "skip_reason": "pre_marker",
        },
        # The recorded daemon: the sweep skips it as the singleton, then the reset stops it as
        # unhealthy. One line must say what happened to it, not both.
        {
            "port": 9401,
            "pid": 5150,
            "cleanup_class": "never_touch",
            "skip_reason": "is_recorded_singleton",
        },
        {"port": 20405, "pid": 7001, "cleanup_class": "never_touch", "skip_reason": "third_party"},
        {
            "port": 20407,
            "pid": 1,
            "cleanup_class": "operator_required",
            "skip_reason": "cross_root",
            "not_yours": True,
            "owner": "root",
        },
    ],
    "failed": [
        {
            "port": 20406,
            "pid": 6006,
            "cleanup_class": "operator_required",
            "failure_reason": "access_denied_on_terminate",
            "detail": "permission denied signalling pid 6006",
        }
    ],
    "consent": "forced",
    "recorded_daemons": [
        {
            "family": "sync",
            "pid": 5150,
            "port": 9401,
            "action": "stop_unhealthy (health timeout)",
            "result": "stopped",
            "cleanup_path": "terminate",
        }
    ],
    "hint": None,
}

REPAIRS_GOLDEN = """\
Repairs
  ✓ port 20403 pid 6003: stopped (it shut down when asked)
  · left alone port 20404 pid 6004: no kitty marker: started before kitty 0.1, or by hand
  · left alone port 20407 pid 1: not yours (owner root)
  ✗ not stopped port 20406 pid 6006: permission denied: it runs as another user
      permission denied signalling pid 6006
      only the user it runs as, or root, can stop it
  · recorded sync daemon pid 5150: alive but not answering health (health timeout) -> stopped
      1 listener kitty never touches left alone (--verbose lists them)
  · unstick lock: kept the stale record
"""


def test_repairs_block_reads_like_sentences() -> None:
    """Issue 15: never_touch hidden unless --verbose, failure detail shown (and that it needs
    another user or root), the recorded daemon on one line only, no raw enum names."""
    repairs = Repairs(
        reset=REPAIRS_RESET, unstick_lock=UnstickResult(False, "kept the stale record")
    )
    text = _text(replace(representative(), repairs=repairs))
    head = text.split("\nIdentity")[0]
    assert head.split("\n\n")[1] == REPAIRS_GOLDEN
    verbose = _text(replace(representative(), repairs=repairs), verbose=True)
    assert "left alone port 20405 pid 7001: not a kitty daemon" in verbose
    assert "port 9401 pid 5150: the recorded" not in verbose  # still one line for it


def test_a_failed_reset_is_not_recommended_again() -> None:
    """The remediation that is the reset just run says what failed and who can fix it."""
    from kitty_doctor._findings import after_repairs

    report = representative()
    found = after_repairs(report.findings, REPAIRS_RESET, CTX)
    kd402 = next(f for f in found if f.id == "KD402")
    assert kd402.remediation.command is None
    assert "did not stop them (port 20406: permission denied" in kd402.remediation.description
    assert "only the user they run as, or root, can stop them" in kd402.remediation.description
    kd401 = next(f for f in found if f.id == "KD401")
    assert kd401.remediation.command is None  # `--reset` ran too, and left 20406 behind
    not_forced = after_repairs(report.findings, {**REPAIRS_RESET, "consent": "not_asked"}, CTX)
    # Without consent the forced reset was not run yet: recommending it is new information.
    assert next(f for f in not_forced if f.id == "KD402").remediation.command == (
        "kitty-doctor --reset --force"
    )
    assert after_repairs(report.findings, None, CTX) == report.findings
    clean = {**REPAIRS_RESET, "failed": []}
    assert after_repairs(report.findings, clean, CTX) == report.findings


def test_reset_with_nothing_to_do_says_so() -> None:
    reset = {"swept": [], "skipped": [], "failed": [], "consent": "none_needed"}
    text = _text(replace(representative(), repairs=Repairs(reset=reset, unstick_lock=None)))
    head = text.split("Identity")[0]
    assert "Repairs\n  ✓ reset: no daemon to stop and no record to repair" in head


def test_token_states_render() -> None:
    expired_access = replace(TOKENS_OK, access_expires_in_s=-3.0, refresh_expires_in_s=7200.0)
    text = _text(representative(tokens=expired_access))
    assert "access token: expired" in text
    assert "refresh token: 2 hours left" in text
    text = _text(representative(storage=replace(STORAGE_OK, parse="corrupt", corrupt_reason="bad")))
    assert "session.json: corrupt (bad)" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-1.0, "expired"),
        (0.0, "expired"),
        (0.5, "< 1 minute"),
        (59.9, "< 1 minute"),
        (60.0, "1 minute"),
        (119.0, "1 minute"),
        (120.0, "2 minutes"),
        (3599.0, "59 minutes"),
        (3600.0, "1 hour"),
        (7200.0, "2 hours"),
        (86399.0, "23 hours"),
        (86400.0, "1 day"),
        (3 * 86400.0, "3 days"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert humanize_remaining(seconds) == text


def test_age_of_zero_is_not_expired() -> None:
    assert humanize_age(0.0) == "< 1 minute"


def test_missing_home_flag_is_said_at_the_top() -> None:
    report = replace(representative(), home=HomeFacts("/typo", HomeSource.FLAG, exists=False))
    buf = io.StringIO()
    render(report, Console(file=buf, width=100, no_color=True))
    lines = buf.getvalue().splitlines()
    assert lines[1] == "✗ home /typo does not exist (from --home): check the path"


@pytest.mark.parametrize("source", [HomeSource.DEFAULT, HomeSource.ENV])
def test_missing_default_or_env_home_is_a_fresh_machine(source: HomeSource) -> None:
    report = replace(representative(), home=HomeFacts("/h", source, exists=False))
    buf = io.StringIO()
    render(report, Console(file=buf, width=100, no_color=True))
    assert "does not exist" not in buf.getvalue()


def test_forty_columns_wrap_with_a_hanging_indent_and_never_split_a_word() -> None:
    """Issue 15: a 40-column terminal; lines wrap only at spaces, continuations sit under the
    text (not under the mark), and an e-mail address or a path is never split."""
    from _doctorkit import IDENTITY_OK

    email = "firstname.lastname-ops@example-company.com"
    report = representative(identity=replace(IDENTITY_OK, email=email))
    wide = _text(report, width=200)
    buf = io.StringIO()
    render(report, Console(file=buf, width=40, highlight=False, no_color=True), width=40)
    narrow = buf.getvalue()
    assert narrow.split() == wide.split()  # the same words, none split, none lost
    assert any(f"<{email}>" in line for line in narrow.splitlines())
    lines = narrow.splitlines()
    for i, line in enumerate(lines):
        body = line.strip()
        assert len(line) <= 40 or " " not in body, line  # only a single long word may overflow
        if i and line.startswith("    ") and not line.startswith("      "):
            # A continuation of a marked line: under the text, never under the mark.
            assert lines[i - 1].startswith(("  ", "    "))
    identity = narrow.split("Identity\n", 1)[1].split("Tokens\n", 1)[0].splitlines()
    assert identity[0] == "  ✓ authenticated as user-1"
    assert identity[1] == f"    <{email}>"
    assert identity[2] == "    (session 1a2b3c4d)"
    fix = narrow.split("KD201", 1)[1].splitlines()
    arrow = next(i for i, line in enumerate(fix) if "→" in line)
    assert fix[arrow] == "      → kill 4242  (stop the process"
    assert fix[arrow + 1].startswith("        ")  # detail continuations: two further in


def test_wrap_lines_breaks_only_at_spaces() -> None:
    from kitty_doctor._wrap import wrap_lines

    assert wrap_lines("aaa bbb ccc", 7) == ["aaa bbb", "ccc"]
    assert wrap_lines("a-very-long-hyphenated-word x", 5) == ["a-very-long-hyphenated-word", "x"]
    assert wrap_lines("first line then rest", 10, 6) == ["first line", "then", "rest"]
    assert wrap_lines("", 10) == [""]
