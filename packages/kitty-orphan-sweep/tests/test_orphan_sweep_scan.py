"""scan() against real listeners on an isolated port block (SWP-01..SWP-06, SWP-21)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pytest

from _orphan_sweep_helpers import (
    PORT_BASE,
    CountingListener,
    Env,
    ProcessPool,
    SuspectListener,
    record_singleton,
)
from kitty_daemon_identity import (
    CleanupClass,
    ConnectState,
    DaemonIdentityRecord,
    SkipReason,
    daemon_root,
)
from kitty_orphan_sweep import scan, sweep
from kitty_orphan_sweep._scan import _SCANNED_MARKERS, scanned_marker_root


def _classes(records: list[DaemonIdentityRecord]) -> list[tuple[int, str, str | None]]:
    return [(r.port, r.cleanup_class, r.skip_reason) for r in records]


def test_empty_range_yields_nothing(env: Env) -> None:
    assert scan("sync") == []
    assert scan("dashboard", home=env.home) == []


def test_an_empty_range_is_scanned_without_psutil(env: Env) -> None:
    """Nothing listening, no process to look at: psutil (and importlib.metadata, for the version)
    stays out of the process (issue 15: the doctor's cold start on a fresh machine)."""
    code = (
        "import sys, kitty_orphan_sweep\n"
        "assert kitty_orphan_sweep.scan_listeners('sync') == []\n"
        "print(kitty_orphan_sweep.__version__)\n"
        "print(sorted(m for m in ('psutil', 'importlib.metadata') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.splitlines()[1:] == ["[]"]


def _counting_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every port the scan's connect probe is asked to open a socket for."""
    from kitty_orphan_sweep import _scan
    from kitty_orphan_sweep._net import connect_probe as probe

    ports: list[int] = []

    def counted(wanted: Iterable[int], timeout: float) -> dict[int, ConnectState]:
        wanted = list(wanted)
        ports.extend(wanted)
        return probe(wanted, timeout)

    monkeypatch.setattr(_scan, "connect_probe", counted)
    return ports


def test_only_ports_the_kernel_lists_as_listening_are_connected_to(
    env: Env, pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool.silent_tcp(env.sync[3])
    connected = _counting_connects(monkeypatch)
    records = scan("sync", health_timeout=0.3)
    assert [r.port for r in records] == [env.sync[3]]
    assert connected == [env.sync[3]]  # not one socket per port of the range


def test_without_sock_diag_every_port_of_the_range_is_tried(
    env: Env, pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitty_orphan_sweep import _scan

    pool.silent_tcp(env.sync[3])
    monkeypatch.setattr(_scan, "listening_ports", lambda: None)  # netlink refused: no prefilter
    connected = _counting_connects(monkeypatch)
    records = scan("sync", health_timeout=0.3)
    assert [r.port for r in records] == [env.sync[3]]
    assert connected == list(env.sync)


def test_bad_arguments_fail_before_any_socket(env: Env) -> None:
    with pytest.raises(ValueError, match="outside the sync range"):
        scan("sync", ports=[env.sync.stop])
    with pytest.raises(ValueError, match="unknown daemon family 'mail'"):
        scan("mail")
    with pytest.raises(ValueError, match="connect_timeout"):
        scan("sync", connect_timeout=0)
    with pytest.raises(ValueError, match="health_timeout"):
        scan("sync", health_timeout=-1)


def test_plain_listeners_are_never_touch(env: Env, pool: ProcessPool) -> None:
    web = pool.third_party_http(env.sync[0])
    pool.silent_tcp(env.sync[1])
    hung = SuspectListener(env.sync[2])
    try:
        records = scan("sync", health_timeout=0.3)
    finally:
        hung.close()
    assert _classes(records) == [
        (env.sync[0], CleanupClass.NEVER_TOUCH, SkipReason.THIRD_PARTY),
        (env.sync[1], CleanupClass.NEVER_TOUCH, SkipReason.NOT_KITTY),
        (env.sync[2], CleanupClass.NEVER_TOUCH, SkipReason.NOT_KITTY),
    ]
    assert records[0].pid == web.pid
    assert records[2].connect_state == "suspect"
    assert records[2].health_status == "timeout"


def test_reference_daemons_classified_by_scope_and_markers(
    env: Env, pool: ProcessPool, tmp_path: Path
) -> None:
    other_home = tmp_path / "other-home"
    other_home.mkdir()
    ours = pool.reference(env.home, env.sync[0])
    singleton = pool.reference(env.home, env.sync[1])
    cross = pool.reference(env.home, env.sync[2], markers=other_home)
    pre = pool.reference(env.home, env.sync[3], markers=None)
    wedged = pool.reference(env.home, env.sync[4], args=["--wedge", "accept"])
    pool.reference(env.home, env.sync[5], args=["--advertise-version", "3.2.2"])
    pool.reference(env.home, env.dashboard[0], family="dashboard")
    record_singleton(env.home, singleton)
    records = scan("sync", health_timeout=0.3)
    assert _classes(records) == [
        (env.sync[0], CleanupClass.SAFE_AUTO, None),
        (env.sync[1], CleanupClass.NEVER_TOUCH, SkipReason.IS_RECORDED_SINGLETON),
        (env.sync[2], CleanupClass.OPERATOR_REQUIRED, SkipReason.CROSS_ROOT),
        (env.sync[3], CleanupClass.OPERATOR_REQUIRED, SkipReason.PRE_MARKER),
        (env.sync[4], CleanupClass.OPERATOR_REQUIRED, SkipReason.UNRESPONSIVE),
        (env.sync[5], CleanupClass.SAFE_AUTO, None),
    ]
    by_port = {r.port: r for r in records}
    assert by_port[env.sync[0]].pid == ours.pid
    assert by_port[env.sync[4]].pid == wedged.pid
    assert by_port[env.sync[5]].stale_version is True
    assert by_port[env.sync[5]].package_version == "3.2.2"
    assert by_port[env.sync[2]].pid == cross.pid
    assert by_port[env.sync[3]].pid == pre.pid
    # The cross-root marker is remembered for a forced sweep's re-check and key lookup.
    cross_rec = by_port[env.sync[2]]
    assert scanned_marker_root(cross_rec.port, cross_rec.pid, cross_rec.process_started_at) == str(
        daemon_root(other_home)
    )
    # The dashboard family sees only its own daemon, as safe_auto.
    assert _classes(scan("dashboard")) == [(env.dashboard[0], CleanupClass.SAFE_AUTO, None)]


@pytest.mark.parametrize("looking_from", ["another_home", "a_nonexistent_home"])
def test_another_homes_live_singleton_is_never_touch_from_here(
    env: Env, pool: ProcessPool, tmp_path: Path, looking_from: str
) -> None:
    """Issue 10 §4: `--home B --reset --force` (or a typo'd home) stopped home A's singleton."""
    home_a = tmp_path / "home-a"
    home_a.mkdir(mode=0o700)
    singleton = pool.reference(home_a, env.sync[0], markers=home_a)
    record_singleton(home_a, singleton)
    deleted = tmp_path / "deleted-checkout"
    orphan = pool.reference(env.home, env.sync[1], markers=deleted)
    shutil.rmtree(deleted)  # the checkout (and its daemon root) is gone; its daemon lives on
    here = env.home if looking_from == "another_home" else tmp_path / "no-such-home"
    records = scan("sync", home=here)
    assert _classes(records) == [
        (env.sync[0], CleanupClass.NEVER_TOUCH, SkipReason.OTHER_HOME_SINGLETON),
        (env.sync[1], CleanupClass.OPERATOR_REQUIRED, SkipReason.CROSS_ROOT),
    ]
    assert "root_missing" in records[1].evidence
    result = sweep(records, force=True, home=here, family="sync")
    assert [e.port for e in result.skipped] == [env.sync[0]]
    assert singleton.alive()
    assert [e.pid for e in result.swept] == [orphan.pid]


def test_kitty_listener_with_unknown_pid_stays_visible(env: Env, pool: ProcessPool) -> None:
    from test_orphan_sweep_pids import FakeTable

    pool.reference(env.home, env.sync[0])
    records = scan("sync", process_table=FakeTable({env.sync[0]: {None}}))
    assert _classes(records) == [
        (env.sync[0], CleanupClass.OPERATOR_REQUIRED, SkipReason.MISSING_PID)
    ]


def test_hostile_proxy_environment_changes_nothing(
    env: Env, pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool.reference(env.home, env.sync[0])
    pool.third_party_http(env.sync[1])
    pool.silent_tcp(env.sync[2])
    baseline = scan("sync", health_timeout=0.3)
    proxy = CountingListener(PORT_BASE + 199)
    try:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{PORT_BASE + 199}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        hostile = scan("sync", health_timeout=0.3)
    finally:
        proxy.close()
    # idle_s is the daemon's own clock and moves between scans; everything else is identical.
    assert [replace(r, idle_s=None) for r in hostile] == [replace(r, idle_s=None) for r in baseline]
    assert len(hostile) == 3
    assert proxy.count == 0


def test_marker_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from kitty_orphan_sweep import _scan

    monkeypatch.setattr(_scan, "_SCANNED_MARKERS_MAX", 2)
    monkeypatch.setattr(_scan, "_SCANNED_MARKERS", {})
    for i in range(3):
        _scan._remember_marker(1, i, 1.0, f"/r{i}")
    assert scanned_marker_root(1, 0, 1.0) is None
    assert scanned_marker_root(1, 2, 1.0) == "/r2"
    assert scanned_marker_root(1, None, 1.0) is None
    assert _SCANNED_MARKERS is not _scan._SCANNED_MARKERS


def test_extra_entry_signatures_extend_the_spawn_shape(env: Env, pool: ProcessPool) -> None:
    from _orphan_sweep_helpers import SILENT_TCP

    pool.python(SILENT_TCP, env.sync[0], "my-app-daemon")
    assert _classes(scan("sync", health_timeout=0.2)) == [
        (env.sync[0], CleanupClass.NEVER_TOUCH, SkipReason.NOT_KITTY)
    ]
    shaped = scan("sync", health_timeout=0.2, extra_entry_signatures=["my-app-daemon", ""])
    # Spawn-shaped but unmarked: the operator decides (a signature alone is never kill authority).
    assert _classes(shaped) == [
        (env.sync[0], CleanupClass.OPERATOR_REQUIRED, SkipReason.PRE_MARKER)
    ]


def test_scan_listeners_adds_the_process_facts_an_operator_reviews(
    env: Env, pool: ProcessPool, tmp_path: Path
) -> None:
    import os

    from kitty_orphan_sweep import scan_listeners
    from test_orphan_sweep_pids import FakeTable

    deleted = tmp_path / "deleted-checkout"
    ours = pool.reference(env.home, env.sync[0])
    gone = pool.reference(env.home, env.sync[1], markers=deleted)
    shutil.rmtree(deleted, ignore_errors=True)
    pre = pool.reference(env.home, env.sync[2], markers=None)
    scanned = scan_listeners("sync", health_timeout=0.3)
    # The same records as scan() (idle_s is the daemon's own clock and moves between scans).
    assert [replace(s.record, idle_s=None) for s in scanned] == [
        replace(r, idle_s=None) for r in scan("sync", health_timeout=0.3)
    ]
    by_port = {s.record.port: s.process for s in scanned}
    mine = by_port[env.sync[0]]
    assert mine is not None
    assert (mine.pid, mine.uid) == (ours.pid, os.getuid())
    assert mine.root == str(daemon_root(env.home))
    assert mine.root_exists is True
    assert mine.argv is not None
    assert "kitty_daemon_identity" in mine.argv
    assert mine.create_time == scanned[0].record.process_started_at
    missing = by_port[env.sync[1]]
    assert missing is not None
    assert (missing.pid, missing.root, missing.root_exists) == (
        gone.pid,
        str(deleted.resolve() / "daemon"),
        False,
    )
    unmarked = by_port[env.sync[2]]
    assert unmarked is not None
    assert (unmarked.pid, unmarked.root, unmarked.root_exists) == (pre.pid, None, None)
    # A listener whose PID the OS hides (another user's) still shows whose it is: the uid the
    # kernel records for its socket; nothing else is guessed.
    (hidden,) = scan_listeners(
        "sync", ports=[env.sync[0]], process_table=FakeTable({env.sync[0]: {None}})
    )
    assert hidden.process is not None
    assert (hidden.process.pid, hidden.process.uid) == (None, os.getuid())
    assert (hidden.process.argv, hidden.process.root) == (None, None)

    class NoSocketTable(FakeTable):
        def listening_sockets(self, port: int, pid: int | None) -> None:
            raise OSError("no socket table")

    (unknown,) = scan_listeners(
        "sync", ports=[env.sync[0]], process_table=NoSocketTable({env.sync[0]: {None}})
    )
    assert unknown.process is None
