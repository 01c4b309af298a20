"""Another app's daemon family end to end (issue 13): its markers, variables, files and client."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import psutil
import pytest

from _acme_app import SYNC
from _orphan_sweep_helpers import Env, ProcessPool, RecordingListener
from kitty_daemon_identity import KITTY, read_state
from kitty_orphan_sweep import (
    DaemonGoneError,
    DaemonHandle,
    SweepGuardError,
    check_recorded,
    ensure_daemon,
    scan,
    stop_recorded,
    sweep,
)

HERE = Path(__file__).parent
ACME_CMD = [sys.executable, str(HERE / "_acme_app.py")]


@pytest.fixture
def acme(env: Env, monkeypatch: pytest.MonkeyPatch) -> Path:
    """acme's home and its own range variable (the test's private port block)."""
    monkeypatch.setenv("ACME_SYNC_PORTS", f"{env.sync.start}-{env.sync.stop}")
    monkeypatch.delenv("KITTY_SYNC_PORTS")  # acme never reads kitty's variables
    home = env.home.parent / "acme-home"
    monkeypatch.setenv("ACME_HOME", str(home))
    return home


def test_an_app_family_spawns_reuses_and_serves_its_own_routes(acme: Path) -> None:
    first = ensure_daemon(ACME_CMD, family=SYNC)
    try:
        assert not first.reused
        proc = psutil.Process(first.pid)
        argv = proc.cmdline()
        root = (acme / "daemon").resolve()
        assert f"--acme-daemon-root={root}" in argv
        # Paths (the venv, the temp home) are this machine's; no element of acme's own says kitty.
        exe = str(Path(sys.executable).resolve())
        own = [a.replace(str(root), "").replace(exe, "") for a in argv[2:]]
        assert not any("kitty" in a for a in own), own
        assert (root / "sync-state.json").is_file()
        assert (root / "sync-spawn.lock").exists()
        assert (root / "sync.log").exists()
        # expected_version defaults to the family's version: the daemon is reused, not replaced.
        second = ensure_daemon(ACME_CMD, family=SYNC)
        assert second.reused
        assert second.pid == first.pid
        answer = second.client().get("/api/hello", query={"name": "wile"})
        assert answer.status == 200
        assert answer.body["hello"] == "wile"
        # The spawner adds acme's contract variables and none of kitty's (the rest is inherited).
        assert {"ACME_DAEMON_PORT", "ACME_HOME"} <= set(answer.body["env"])
        assert "KITTY_DAEMON_PORT" not in answer.body["env"]
        (record,) = scan(SYNC)
        assert record.cleanup_class == "never_touch"  # our singleton
        assert record.skip_reason == "is_recorded_singleton"
    finally:
        state = read_state((acme / "daemon").resolve(), SYNC)
        assert state is not None
        stopped = stop_recorded(state, family=SYNC)
        assert stopped.port == first.port
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(first.pid).wait(timeout=20)
    assert check_recorded(state, family=SYNC).status.value in {"dead", "reused"}


def test_the_client_sends_nothing_once_the_port_is_someone_elses(acme: Path) -> None:
    handle = ensure_daemon(ACME_CMD, family=SYNC)
    state = handle.state
    client = handle.client()
    assert "Bearer" not in repr(client)
    stop_recorded(state, family=SYNC)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(handle.pid).wait(timeout=20)
    squatter = RecordingListener(handle.port, status=200)
    try:
        with pytest.raises(DaemonGoneError, match="nothing was sent"):
            client.get("/api/hello")
        assert all(b"Authorization" not in r for r in squatter.requests)
        assert squatter.requests == []
    finally:
        squatter.close()


ACME_DAEMON = """
import sys
from kitty_daemon_identity import AppProfile, Family, PortRange, serve_daemon

ACME = AppProfile("acme", families=(Family("sync", PortRange(18400, 18450), "1.4.0"),))

def setup(server):
    server.add_route("GET", "/api/status", lambda body: (200, {"synced": 0}))

sys.exit(serve_daemon(ACME.family("sync"), setup=setup, hard_exit_after_retire=False))
"""


def test_readme_app_example_runs(
    acme: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from test_orphan_sweep_readme import APP_EXAMPLE

    package = tmp_path / "site" / "acme"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "daemon.py").write_text(ACME_DAEMON)
    monkeypatch.setenv("PYTHONPATH", str(package.parent))
    namespace: dict[str, object] = {"__name__": "readme_app_example"}
    exec(compile(APP_EXAMPLE, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    handle = namespace["handle"]
    assert isinstance(handle, DaemonHandle)
    try:
        assert capsys.readouterr().out.strip() == "200 {'synced': 0}"
        assert handle.state.package_version == "1.4.0"
    finally:
        stop_recorded(handle.state, family=SYNC)


def test_an_apps_records_sweep_without_naming_the_family_again(
    acme: Path, pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scan(SYNC) records carry acme's app: sweep() judges them against acme's range, not
    kitty's (whose sync range never holds acme's ports), and refuses a mix of apps."""
    handle = ensure_daemon(ACME_CMD, family=SYNC)
    try:
        records = scan(SYNC)
        assert [r.port for r in records] == [handle.port]
        assert records[0].app is SYNC.app
        assert "app" not in records[0].to_dict()  # not part of the document
        result = sweep(records)  # the singleton is never_touch: skipped, nothing signalled
        assert [(e.port, e.cleanup_class) for e in result.skipped] == [(handle.port, "never_touch")]
        kitty_record = dataclasses.replace(records[0], app=KITTY)
        with pytest.raises(SweepGuardError, match="scanned_app"):
            sweep([records[0], kitty_record])
        with pytest.raises(SweepGuardError, match="scanned_app"):
            sweep(records, family="sync")  # kitty's sync is not acme's
    finally:
        stop_recorded(handle.state, family=SYNC)
