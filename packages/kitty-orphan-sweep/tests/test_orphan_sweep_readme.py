"""The README's example runs as written against real daemons and does what its comments say.

Ports (offsets from the package's test window, 20200 by default): sync +183..+187 and dashboard
+195..+198, a block inside +180..+199 that no other test of this package binds (those use
+180..+182, +190..+194 and +199 there).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _orphan_sweep_helpers import PORT_BASE, ProcessPool, reap_marked
from kitty_daemon_identity import CleanupClass, SkipReason, daemon_root, read_state
from kitty_orphan_sweep import CleanupPath
from kitty_orphan_sweep._net import connect_probe, port_refuses

README = Path(__file__).parents[1] / "README.md"
EXAMPLE, APP_EXAMPLE = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), re.DOTALL)
SYNC = range(PORT_BASE + 183, PORT_BASE + 188)
DASHBOARD = range(PORT_BASE + 195, PORT_BASE + 199)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private KITTY_HOME and port ranges; every daemon rooted in it is reaped afterwards."""
    path = tmp_path / "home"
    path.mkdir(mode=0o700)
    busy = sorted(connect_probe([*SYNC, *DASHBOARD], 0.2))
    assert not busy, f"README test ports {busy} are already in use by another process"
    monkeypatch.setenv("KITTY_HOME", str(path))
    monkeypatch.setenv("KITTY_SYNC_PORTS", f"{SYNC.start}-{SYNC.stop}")
    monkeypatch.setenv("KITTY_DASHBOARD_PORTS", f"{DASHBOARD.start}-{DASHBOARD.stop}")
    try:
        yield path
    finally:
        reap_marked(tmp_path)


def test_readme_example_spawns_one_daemon_reaps_the_stale_orphan_and_spares_the_rest(
    home: Path, pool: ProcessPool, capsys: pytest.CaptureFixture[str]
) -> None:
    # A stale daemon of this scope (safe_auto) and one without a root marker (operator_required).
    stale = pool.reference(home, SYNC[2], args=["--advertise-version", "3.2.2"])
    unmarked = pool.reference(home, SYNC[3], markers=None)

    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(EXAMPLE, "README.md", "exec"), namespace)  # noqa: S102 - our own README

    handle, records, result = namespace["handle"], namespace["records"], namespace["result"]
    # ensure_daemon spawned the singleton on the first free port and reaped the stale orphan.
    assert not handle.reused
    assert handle.port == SYNC[0]
    assert read_state(daemon_root(home)) == handle.state
    assert [(e.port, e.cleanup_path) for e in handle.reaped.swept] == [
        (stale.port, CleanupPath.HTTP_SHUTDOWN)
    ]
    assert not stale.alive()
    assert port_refuses(stale.port, 0.2)
    printed = capsys.readouterr().out
    assert printed == f"http://127.0.0.1:{SYNC[0]} False [{stale.port}]\n"
    # scan saw the singleton and the unmarked daemon; sweep without force touched neither.
    assert [(r.port, r.cleanup_class) for r in records] == [
        (handle.port, CleanupClass.NEVER_TOUCH),
        (unmarked.port, CleanupClass.OPERATOR_REQUIRED),
    ]
    assert not result.swept
    assert not result.failed
    assert [(e.port, e.skip_reason) for e in result.skipped] == [
        (handle.port, SkipReason.IS_RECORDED_SINGLETON),
        (unmarked.port, SkipReason.PRE_MARKER),
    ]
    assert unmarked.alive()
    assert sorted(connect_probe(SYNC, 0.2)) == [handle.port, unmarked.port]
