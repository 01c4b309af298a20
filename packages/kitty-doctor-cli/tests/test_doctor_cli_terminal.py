"""Terminal safety (issue 10 §7): control bytes from outside kitty never reach human output."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from rich.console import Console

from _doctorkit import RECORD, RECORDED, daemon, daemons, orphan, orphans
from _reports import representative
from kitty_doctor._document import dumps, report_document
from kitty_doctor._model import HomeFacts, HomeSource, Report
from kitty_doctor._render import render
from kitty_doctor._terminal import terminal_safe

# Clear screen, an OSC 52 clipboard write ended by BEL, a one-byte CSI, DEL, a bidi override.
HOSTILE = "v1\x1b[2J\x1b]52;c;ZWNobw==\x07\x9b31m\x7f\u202e0 critical\n1 ok"
FORBIDDEN = ("\x1b", "\x07", "\x9b", "\x7f", "\u202e")


def hostile_report() -> Report:
    base_lock = representative().refresh_lock
    assert base_lock is not None
    lock = replace(
        base_lock,
        holder_cmdline=HOSTILE,
        record=replace(RECORD, host=HOSTILE, label=HOSTILE),
    )
    sync = daemon(
        health_package_version=HOSTILE,
        health_error=HOSTILE,
        recorded=replace(RECORDED, package_version=HOSTILE),
    )
    rows = orphans(
        orphan(20403, "safe_auto", package_version=HOSTILE, executable_summary=HOSTILE),
        orphan(
            20404, "operator_required", "pre_marker", daemon_root=HOSTILE, package_version=HOSTILE
        ),
        orphan(20405, "never_touch", "third_party", pid=7001, package_version=HOSTILE),
    )
    report = representative(lock=lock, daemons=daemons(sync), orphans=rows)
    return replace(report, home=HomeFacts(f"/h{HOSTILE}", HomeSource.FLAG))


@pytest.mark.parametrize("verbose", [False, True])
def test_hostile_fields_are_rendered_visible_not_sent(verbose: bool) -> None:
    buf = io.StringIO()
    render(hostile_report(), Console(file=buf, width=200, no_color=True), verbose=verbose)
    text = buf.getvalue()
    for byte in FORBIDDEN:
        assert byte not in text, f"{byte!r} reached the terminal"
    assert "\\x1b[2J" in text  # shown, so the operator sees something odd is there
    assert "0 critical\\x0a1 ok" in text  # a field cannot start a fake line either


def test_json_stays_exact() -> None:
    doc = json.loads(dumps(report_document(hostile_report())))
    assert doc["home"]["path"] == f"/h{HOSTILE}"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, ünïcode ✓", "plain text, ünïcode ✓"),
        ("a\x00b", "a\\x00b"),
        ("\x1b", "\\x1b"),
        ("\x9f", "\\x9f"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("tab\there", "tab\\x09here"),
    ],
)
def test_terminal_safe_table(raw: str, shown: str) -> None:
    assert terminal_safe(raw) == shown


def test_multiline_keeps_line_feeds_only() -> None:
    assert terminal_safe("a\nb\r\x1b", multiline=True) == "a\nb\\x0d\\x1b"
