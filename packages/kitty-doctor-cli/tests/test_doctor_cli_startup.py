"""A light cold start (issue 15, DOC-13): the default `kitty-doctor --json` imports only what it
uses. Each run is a real interpreter (`python -X importtime -m kitty_doctor`), so the import
tree is the console script's, not the test process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _procs import ThirdParty, port_is_free

#: What a run on a machine with nothing listening must not import: dataclasses and inspect
#: (kitty-filelock's frozen_dataclass makes the value classes without them), hashlib (no daemon's
#: scope to hash), traceback (nothing failed), string (no app re-worded a finding), the CLI
#: framework and the human renderer (`--json` needs neither), psutil (no process to look at),
#: asyncio (nothing runs an event loop), importlib.metadata (the versions have a cheaper
#: source), the daemon's HTTP server and httpx (no section serves or makes a request through
#: them).
NOT_ON_THE_DEFAULT_PATH = (
    "dataclasses",
    "inspect",
    "hashlib",
    "traceback",
    "string",
    "typer",
    "click",
    "rich",
    "psutil",
    "asyncio",
    "importlib.metadata",
    "http.server",
    "httpx",
)


#: Small ranges of this package's block that no other test of it binds; checked free first, so
#: "nothing listening" holds (the import tree depends on what the scan finds).
SYNC = range(20580, 20585)
DASHBOARD = range(20585, 20590)


def _imported(home: Path) -> tuple[set[str], dict[str, Any]]:
    ranges = {
        "KITTY_SYNC_PORTS": f"{SYNC.start}-{SYNC.stop}",
        "KITTY_DASHBOARD_PORTS": f"{DASHBOARD.start}-{DASHBOARD.stop}",
    }
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kitty_doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KITTY_HOME": str(home), **ranges},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    return names, json.loads(proc.stdout)


def test_a_fresh_machine_imports_nothing_the_run_does_not_use(tmp_path: Path) -> None:
    assert all(port_is_free(p) for p in [*SYNC, *DASHBOARD]), "test ports busy before the test"
    imported, doc = _imported(tmp_path / "fresh")
    assert {"kitty_doctor._run", "kitty_orphan_sweep"} <= imported  # the probe sees the tree
    assert [name for name in NOT_ON_THE_DEFAULT_PATH if name in imported] == []
    # The cheap source reports the same versions importlib.metadata would.
    from importlib.metadata import version

    tool = doc["tool"]
    assert tool["version"] == version("kitty-doctor-cli")
    assert len(tool["packages"]) == 5
    assert tool["packages"] == {name: version(name) for name in tool["packages"]}


def test_psutil_loads_once_there_is_a_listener_to_look_at(tmp_path: Path) -> None:
    listener = ThirdParty(SYNC.start + 2)
    try:
        imported, doc = _imported(tmp_path / "fresh")
    finally:
        listener.close()
    assert "psutil" in imported
    assert "hashlib" in imported  # the scan's own scope id, to compare the listener's with
    ports = [o["port"] for records in doc["orphans"].values() for o in records]
    assert ports == [SYNC.start + 2]
