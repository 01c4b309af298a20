"""INT-03 family boundaries on the DEFAULT ranges (sync [9400, 9450), dashboard [9237, 9337)).

The scene, rebuilt for every cleanup path:

* in range, first and last port of each family: same-scope current-version reference daemons
  (`safe_auto` orphans of their family);
* in range, one third-party web app per family (second port);
* just outside each family (both sides): counting listeners that record every connection and
  every catchable signal; parametrised as kitty-looking (valid same-scope health of the adjacent
  family plus a root marker: each would be `safe_auto` if an off-by-one let it into the range)
  or third-party (an unrelated web app).

Each path runs for sync, then for dashboard: `ensure_daemon`, `kitty-doctor --reset`,
`kitty-doctor --reset --force`. After the sync step the sync first/last daemons are gone and the
dashboard ones alive; fresh sync daemons are then started on the freed edge ports, and after the
dashboard step the dashboard daemons are gone and those sync daemons alive. After EVERY step the
counting listeners are settled (a barrier connection and signal of our own, so nothing still in
flight is missed) and have received 0 connections and 0 signals; the third-party listeners are
alive and were never signalled. Controls: the in-range third-party counter of the family being
cleaned saw the scan's probes, and a signal we send ourselves is counted. The pre-flight refuses
to run (naming the process) if anything foreign listens anywhere in 9236..9450: with
`--reset --force` in play we must never meet a developer's daemon.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _daemons import Lab, open_lab, run_doctor, start_counter, start_daemon
from _harness import Running, listening_pids, mask_secrets, wait_exit
from kitty_orphan_sweep import ensure_daemon

SYNC_FIRST, SYNC_LAST, SYNC_BELOW, SYNC_ABOVE = 9400, 9449, 9399, 9450
DASH_FIRST, DASH_LAST, DASH_BELOW, DASH_ABOVE = 9237, 9336, 9236, 9337
SYNC_THIRD_PARTY, DASH_THIRD_PARTY = 9401, 9238
#: Everything from just below the dashboard range to just above the sync range.
GUARDED = range(DASH_BELOW, SYNC_ABOVE + 1)


@pytest.fixture
def lab(tmp_path: Path, kitty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    with open_lab(tmp_path, kitty_home, None, monkeypatch, preflight=GUARDED) as lab:
        yield lab


class Scene:
    def __init__(self, lab: Lab, outside: str) -> None:
        p, home = lab.procs, lab.home
        self.sync_edges = [
            start_daemon(p, home, port=SYNC_FIRST),
            start_daemon(p, home, port=SYNC_LAST),
        ]
        self.dash_edges = [
            start_daemon(p, home, family="dashboard", port=DASH_FIRST),
            start_daemon(p, home, family="dashboard", port=DASH_LAST),
        ]
        self.third_party = [start_counter(p, SYNC_THIRD_PARTY), start_counter(p, DASH_THIRD_PARTY)]
        kitty = outside == "kitty-looking"

        def counter(port: int, family: str) -> Running:
            return start_counter(p, port, kitty_home=home if kitty else None, family=family)

        self.outside = [
            counter(SYNC_BELOW, "sync"),
            counter(SYNC_ABOVE, "sync"),
            counter(DASH_BELOW, "dashboard"),
            counter(DASH_ABOVE, "dashboard"),
        ]

    def assert_outside_untouched(self, step: str) -> None:
        for counter in [*self.outside, *self.third_party]:
            counter.settle()  # every probe or signal sent so far is now in its events file
        for counter in self.outside:
            assert counter.alive(), f"{step}: {counter.name} was stopped"
            assert counter.connections() == 0, f"{step}: {counter.name} was connected to"
            assert counter.signals() == [], f"{step}: {counter.name} got {counter.signals()}"
        for web in self.third_party:
            assert web.alive(), f"{step}: third-party {web.name} was stopped"
            assert web.signals() == [], f"{step}: third-party {web.name} got {web.signals()}"


def _gone(daemons: list[Running]) -> None:
    for daemon in daemons:
        wait_exit(daemon, timeout=10)  # swept means the process is gone (reaped by us)


def _alive(daemons: list[Running], step: str) -> None:
    for daemon in daemons:
        assert daemon.alive(), f"{step}: {daemon.name} was stopped by the other family's cleanup"


def _run_path(lab: Lab, path: str, family: str) -> int | None:
    """One cleanup path for one family; returns the pid of the singleton `ensure_daemon` spawned."""
    if path == "ensure":
        handle = ensure_daemon(
            [sys.executable, "-m", "kitty_daemon_identity", "--family", family], family=family
        )
        assert not handle.reused
        edges = {SYNC_FIRST, SYNC_LAST} if family == "sync" else {DASH_FIRST, DASH_LAST}
        assert {e.port for e in handle.reaped.swept} == edges
        return handle.pid
    args = ["--reset", "--json", "--family", family]
    if path == "reset-force":
        args.append("--force")
    result = run_doctor(*args, home=lab.home)
    code = result.returncode  # not the process object: its repr holds the output
    assert code in (0, 1), mask_secrets(result.stderr)
    reset = json.loads(result.stdout)["repairs"]["reset"]
    swept = {e["port"] for e in reset["swept"]}
    edges = {SYNC_FIRST, SYNC_LAST} if family == "sync" else {DASH_FIRST, DASH_LAST}
    assert swept == edges, reset
    assert reset["failed"] == [], reset
    return None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("outside", ["kitty-looking", "third-party"])
@pytest.mark.parametrize("path", ["ensure", "reset", "reset-force"])
def test_cleanup_never_crosses_a_family_boundary(lab: Lab, path: str, outside: str) -> None:
    scene = Scene(lab, outside)

    sync_singleton = _run_path(lab, path, "sync")
    scene.assert_outside_untouched(f"{path}/sync")
    # Control: the same counting code does see the probes of a scan that covers its port.
    assert scene.third_party[0].connections() >= 1
    assert scene.third_party[1].connections() == 0  # a sync path never probes the dashboard
    _gone(scene.sync_edges)
    _alive(scene.dash_edges, f"{path}/sync")

    # Vice versa: same-scope sync orphans on the freed edges (the one ensure_daemon spawned may
    # hold one of them) must survive the dashboard path.
    taken = listening_pids([SYNC_FIRST, SYNC_LAST])
    sync_survivors = [
        start_daemon(lab.procs, lab.home, port=port)
        for port in (SYNC_FIRST, SYNC_LAST)
        if port not in taken
    ]
    assert sync_survivors, "no sync edge port was free for a survivor"
    dash_singleton = _run_path(lab, path, "dashboard")
    scene.assert_outside_untouched(f"{path}/dashboard")
    assert scene.third_party[1].connections() >= 1
    _gone(scene.dash_edges)
    _alive(sync_survivors, f"{path}/dashboard")

    listeners = listening_pids([*lab.ranges.sync, *lab.ranges.dashboard])
    expected = {w.port: w.pid for w in [*scene.third_party, *sync_survivors]}
    if path == "ensure":
        # plus the one singleton each family's ensure_daemon spawned, both still running
        singletons = {pid for port, pid in listeners.items() if port not in expected}
        assert singletons == {sync_singleton, dash_singleton}, listeners
        assert len(listeners) == len(expected) + 2
    else:
        assert listeners == expected

    # Control: the counters do log a signal (SIGTERM only logs; they keep running).
    probe = scene.outside[0]
    os.kill(probe.pid, signal.SIGTERM)
    probe.settle()
    assert probe.signals() == ["signal SIGTERM"]
    assert probe.alive()


def test_preflight_names_the_foreign_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener the test did not start on a guarded port makes the pre-flight fail, naming it."""
    from _daemons import PortsBusy, start_counter
    from _harness import Procs

    procs = Procs(tmp_path)
    try:
        squatter = start_counter(procs, SYNC_ABOVE)
        home = tmp_path / "h"
        home.mkdir()
        with (
            pytest.raises(PortsBusy) as err,
            open_lab(tmp_path, home, None, monkeypatch, preflight=GUARDED),
        ):
            pass  # pragma: no cover - the pre-flight raises first
        assert f"port {SYNC_ABOVE} is held by pid {squatter.pid}" in str(err.value)
        assert "count" in str(err.value)  # the command line is shown
    finally:
        procs.close()
