"""Section isolation (DOC-02) through the collectors seam, one crashing section at a time."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from _doctorkit import validate, write_session
from kitty_doctor._config import resolve_config
from kitty_doctor._document import report_document
from kitty_doctor._model import SectionName, SectionStatus
from kitty_doctor._redact import Redactor
from kitty_doctor._report import Collectors, build_report

SECTIONS = ["identity", "tokens", "storage", "refresh_lock", "daemons", "orphans"]


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise OSError(5, "Input/output error")


@pytest.mark.parametrize("name", SECTIONS)
def test_one_crashing_section_never_hides_the_others(home: Path, name: str) -> None:
    write_session(home)
    cfg = resolve_config(
        home=None,
        family="all",
        stuck_threshold_s=60.0,
        expected_daemon_version=None,
        login_command=None,
    )
    collectors = dataclasses.replace(Collectors(), **{name: _boom})
    report = build_report(
        cfg, tool_version="0.1.0", packages={}, redactor=Redactor(), collectors=collectors
    )
    statuses = {s.name.value: s.status for s in report.sections}
    assert [s.name for s in report.sections] == list(SectionName)
    assert statuses[name] is SectionStatus.CRASHED
    assert all(statuses[other] is SectionStatus.OK for other in statuses if other != name)
    assert [f.id for f in report.findings] == ["KD901"]
    assert report.exit_code == 2
    doc = report_document(report)
    validate(
        {
            **doc,
            "tool": {
                **doc["tool"],
                "packages": dict.fromkeys(
                    [
                        "kitty-filelock",
                        "kitty-auth-refresh",
                        "kitty-daemon-identity",
                        "kitty-orphan-sweep",
                        "kitty-doctor-cli",
                    ],
                    "0.1.0",
                ),
            },
        }
    )
    assert doc[name] is None
    assert doc["sections"][name]["error"] == "OSError: [Errno 5] Input/output error"
    for other in SECTIONS:
        if other != name:
            assert doc[other] is not None
