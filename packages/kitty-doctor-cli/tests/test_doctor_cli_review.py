# ruff: noqa: E501  (the golden text is the report verbatim; its lines are as long as the report's)
"""Issue 15: what an operator reviews before consenting — owner, age, root (and whether it still
exists), the command line and why kitty cannot prove it safe, in words; never a raw enum name."""

from __future__ import annotations

import io
import re
from dataclasses import replace

import pytest
from rich.console import Console

from _doctorkit import CTX, orphan, orphans, process
from _reports import representative
from kitty_daemon_identity import CleanupClass, IdentitySource, SkipReason
from kitty_doctor._findings import derive_findings
from kitty_doctor._model import Repairs, Report, UnstickResult
from kitty_doctor._render import render
from kitty_doctor._review import details, headline
from kitty_orphan_sweep import CleanupPath, FailureReason

REVIEW_ORPHANS = orphans(
    orphan(
        20404,
        "operator_required",
        "pre_marker",
        evidence=["root_marker:absent"],
        process=process(cmdline="python3 -m kitty_daemon_identity --port 20404 --root /h/daemon"),
    ),
    orphan(
        20406,
        "operator_required",
        "cross_root",
        evidence=["root_marker:other_root", "root_missing"],
        process=process(
            age_s=3 * 86400.0,
            root="/tmp/ci-checkout-17/.kitty/daemon",
            root_exists=False,
            cmdline="python3 -m kitty_daemon_identity --kitty-daemon-root=/tmp/ci-checkout-17/.kitty/daemon",
        ),
    ),
    orphan(
        20407,
        "operator_required",
        "unresponsive",
        package_version=None,
        evidence=["health_timeout"],
        process=process(age_s=40.0, root="/h/daemon", root_exists=True),
    ),
    orphan(
        20408,
        "operator_required",
        "cross_root",
        evidence=["root_marker:other_root"],
        process=process(root="/home/bob-checkout/.kitty/daemon", root_exists=True),
    ),
    orphan(
        20409,
        "operator_required",
        "cross_root",
        pid=1,
        evidence=["root_marker:other_root"],
        process=process(
            uid=0, user="root", root="/root/.kitty/daemon", root_exists=True, yours=False
        ),
    ),
    orphan(20410, "operator_required", "missing_pid", pid=None, process=None),
)

REVIEW_GOLDEN = """\
Orphans
  ! sync port 20404 pid 6004 v3.2.2: needs your review: no kitty marker: started before kitty 0.1, or by hand
      owner alice, up 2 hours, no root marker
      command python3 -m kitty_daemon_identity --port 20404 --root /h/daemon
  ! sync port 20406 pid 6006 v3.2.2: needs your review: started from a home that no longer exists
      owner alice, up 3 days, root /tmp/ci-checkout-17/.kitty/daemon (no longer exists)
      command python3 -m kitty_daemon_identity --kitty-daemon-root=/tmp/ci-checkout-17/.kitty/daemon
  ! sync port 20407 pid 6007: needs your review: not answering for 0.5 s
      owner alice, up < 1 minute, root /h/daemon (exists)
      command python3 -m kitty_daemon_identity --port 20404
  ! sync port 20408 pid 6008 v3.2.2: needs your review: started from another home
      owner alice, up 2 hours, root /home/bob-checkout/.kitty/daemon (exists)
      command python3 -m kitty_daemon_identity --port 20404
      its home /home/bob-checkout/.kitty still exists: clean it up from there (--home /home/bob-checkout/.kitty)
  · sync port 20409 pid 1 v3.2.2: not yours (owner root)
  ! sync port 20410 pid ? v3.2.2: needs your review: the OS does not say which process listens on this port
  ✓ dashboard: no orphans
Findings
  ✗ KD201 lock_stuck: refresh lock held by pid 4242 (python worker.py) for 75 s, longer than its max hold of 10 s + 5 s grace
      → kill 4242  (stop the process that holds the lock; --unstick-lock cannot free a held lock)
  ! KD402 orphans_operator_required: 4 daemons kitty cannot prove safe to stop (port 20404: no kitty marker: started before kitty 0.1, or by hand; port 20406: started from a home that no longer exists; port 20407: not answering for 0.5 s; port 20410: the OS does not say which process listens on this port)
      → kitty-doctor --reset --force  (review them, then stop them)
  · KD403 orphans_other_home: 1 daemon started from another home that still exists (/home/bob-checkout/.kitty; port 20408)
      → kitty-doctor --home /home/bob-checkout/.kitty --reset  (clean them up from their own home)

1 critical, 1 warning, 1 info
"""


def _review_report(repairs: Repairs | None = None) -> Report:
    report = representative(orphans=REVIEW_ORPHANS)
    return report if repairs is None else replace(report, repairs=repairs)


def _render(report: Report, *, verbose: bool = False, width: int | None = None) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=200, highlight=False, no_color=True)
    render(report, console, verbose=verbose, width=width)
    return buf.getvalue()


def test_golden_review_screen() -> None:
    text = _render(_review_report())
    assert text[text.index("Orphans\n") :] == REVIEW_GOLDEN


#: The libraries' closed vocabularies: the JSON keeps them, a person should never need them
#: (the ones that are plain English words, such as `kill` or `unresponsive`, are allowed).
RAW = sorted(
    v
    for v in {v.value for v in SkipReason}
    | {v.value for v in CleanupClass}
    | {v.value for v in IdentitySource if v is not IdentitySource.NONE}
    | {v.value for v in CleanupPath}
    | {v.value for v in FailureReason}
    | {"proc_locks", "root_missing", "health_timeout", "connect_suspect"}
    if "_" in v
)
# A raw value is a whole token: `orphans_safe_auto` (a finding's stable name) is not `safe_auto`.
RAW_PATTERN = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, RAW)) + r")(?![\w-])")


def _every_repair() -> Repairs:
    swept = [
        {"port": 20400 + i, "pid": 100 + i, "cleanup_class": "safe_auto", "cleanup_path": p.value}
        for i, p in enumerate(CleanupPath)
    ]
    skipped = [
        {"port": 20420 + i, "pid": 200 + i, "cleanup_class": "never_touch", "skip_reason": r.value}
        for i, r in enumerate(SkipReason)
    ]
    failed = [
        {
            "port": 20440 + i,
            "pid": 300 + i,
            "cleanup_class": "operator_required",
            "failure_reason": f.value,
            "detail": "some detail",
        }
        for i, f in enumerate(FailureReason)
    ]
    recorded = [
        {"family": "sync", "pid": 5, "port": 9401, "action": action, "result": result, **extra}
        for action, result, extra in [
            ("remove_stale_record", "removed", {}),
            ("remove_foreign_record", "kept", {}),
            ("stop_version_drift (3.2.2 != 0.4.0)", "stopped", {"cleanup_path": "kill"}),
            (
                "stop_unhealthy (timeout)",
                "not stopped: pid_reused (pid 5 started at 1.00)",
                {"failure_reason": "pid_reused"},
            ),
            ("stop_impostor (uid 0)", "skipped: needs consent (--force)", {}),
            ("lock", "spawn lock busy; recorded daemon left alone", {}),
        ]
    ]
    reset = {
        "swept": swept,
        "skipped": skipped,
        "failed": failed,
        "consent": "forced",
        "recorded_daemons": recorded,
        "hint": None,
    }
    return Repairs(reset=reset, unstick_lock=UnstickResult(True, "cleared the stale lock record"))


@pytest.mark.parametrize("verbose", [False, True])
def test_no_raw_enum_name_in_human_output(verbose: bool) -> None:
    every_reason = orphans(
        *(
            orphan(20500 + i, CleanupClass.OPERATOR_REQUIRED.value, r.value, evidence=[e])
            for i, r in enumerate(SkipReason)
            for e in ("root_missing", "health_timeout", "connect_suspect", "health_invalid")
        ),
        *(orphan(20600 + i, c.value, None) for i, c in enumerate(CleanupClass)),
    )
    report = _review_report(repairs=_every_repair())
    texts = [
        _render(report, verbose=verbose),
        _render(representative(orphans=every_reason), verbose=verbose),
    ]
    for text in texts:
        found = sorted(set(RAW_PATTERN.findall(text)))
        assert found == [], found
        assert "pid None" not in text
        assert not re.search(r"(?<![\w-])identity (none|health|cmdline|state)", text)


def test_the_scan_reveals_raw_names_the_pattern_would_catch() -> None:
    # Guards the scan above: the old renderer's words are exactly what it rejects.
    old = "sync port 1 pid 2 v3: operator_required (cross_root), identity health_self_report"
    assert RAW_PATTERN.findall(old) == ["operator_required", "cross_root", "health_self_report"]
    assert RAW_PATTERN.findall("KD401 orphans_safe_auto: 1 orphan") == []


def test_prompt_and_section_share_the_review_lines() -> None:
    rec = REVIEW_ORPHANS.records["sync"][1]
    assert headline("sync", rec) == (
        "sync port 20406 pid 6006 v3.2.2: needs your review: started from a home that no longer exists"
    )
    assert details(rec)[0] == (
        "owner alice, up 3 days, root /tmp/ci-checkout-17/.kitty/daemon (no longer exists)"
    )
    assert details(orphan(1, "operator_required", "missing_pid", process=None)) == []
    unknown = process(user=None, uid=None, age_s=None, cmdline=None)
    assert details(orphan(1, "operator_required", "pre_marker", process=unknown)) == [
        "owner ?, no root marker",
        "command line unreadable",
    ]
    assert headline(
        "sync",
        orphan(
            1, "operator_required", "pre_marker", process=process(user=None, uid=7, yours=False)
        ),
    ) == ("sync port 1 pid 6001 v3.2.2: not yours (owner uid 7)")


def test_other_users_and_other_homes_never_get_force() -> None:
    found = derive_findings(
        identity=None,
        tokens=None,
        storage=None,
        lock=None,
        daemons=None,
        orphans=orphans(*(dict(r) for r in REVIEW_ORPHANS.records["sync"][3:5])),
        sections=(),
        ctx=CTX,
    )
    assert [(f.id, f.remediation.command) for f in found] == [
        ("KD403", "kitty-doctor --home /home/bob-checkout/.kitty --reset")
    ]
