"""INT-01 version matrix: after an upgrade, stale same-scope daemons vanish at the next
`ensure_daemon`, without an extra daemon being started (S6).

* A recorded singleton at the expected version plus same-scope orphans advertising 3.2.2, 3.2.3
  and 3.2.4 (each alone and all together): every orphan is swept (process gone, port free), the
  singleton is untouched and reused, nothing is spawned, and the in-range listener set afterwards
  is the pre-test baseline plus the singleton.
* The recorded singleton itself advertises 3.2.2: it is replaced by exactly one new daemon and
  the orphans are swept; one daemon is left.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _daemons import Lab, open_lab, start_daemon, write_state_for
from _harness import listening_pids, marked_processes, port_block, wait_exit
from kitty_daemon_identity import DaemonFamily, read_state
from kitty_orphan_sweep import ensure_daemon

STALE = ("3.2.2", "3.2.3", "3.2.4")
COMMAND = [sys.executable, "-m", "kitty_daemon_identity", "--family", "sync"]


@pytest.fixture
def lab(tmp_path: Path, kitty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    with open_lab(tmp_path, kitty_home, port_block(0), monkeypatch) as lab:
        yield lab


def _marked_pids(lab: Lab) -> set[int]:
    return {p.pid for p in marked_processes(lab.workdir)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("versions", [*((v,) for v in STALE), STALE], ids=lambda v: "+".join(v))
def test_stale_orphans_are_swept_and_the_singleton_reused(
    lab: Lab, versions: tuple[str, ...]
) -> None:
    baseline = listening_pids(lab.ranges.sync)
    first = ensure_daemon(COMMAND)
    assert not first.reused
    free = [p for p in lab.ranges.sync if p != first.port and p not in baseline]
    orphans = [
        start_daemon(lab.procs, lab.home, port=port, version=v)
        for port, v in zip(free, versions, strict=False)
    ]

    handle = ensure_daemon(COMMAND)

    assert handle.reused
    assert (handle.pid, handle.port) == (first.pid, first.port)
    swept = {e.port: e for e in handle.reaped.swept}
    assert set(swept) == {o.port for o in orphans}
    for orphan, version in zip(orphans, versions, strict=True):
        assert orphan.port is not None  # start_daemon always binds the port it was given
        assert swept[orphan.port].package_version == version
        assert "stale_version" in swept[orphan.port].reason
        wait_exit(orphan, timeout=10)
    assert handle.reaped.failed == ()
    assert listening_pids(lab.ranges.sync) == {**baseline, first.port: first.pid}
    assert _marked_pids(lab) == {first.pid}  # no extra spawn
    state = read_state(lab.root, DaemonFamily.SYNC)
    assert state is not None
    assert (state.pid, state.port) == (first.pid, first.port)


@pytest.mark.timeout(60)
def test_stale_recorded_singleton_is_replaced_by_exactly_one(lab: Lab) -> None:
    baseline = listening_pids(lab.ranges.sync)
    ports = [p for p in lab.ranges.sync if p not in baseline]
    old = start_daemon(lab.procs, lab.home, port=ports[0], version="3.2.2")
    write_state_for(lab.home, old, package_version="3.2.2")
    orphans = [
        start_daemon(lab.procs, lab.home, port=port, version=v)
        for port, v in zip(ports[1:], STALE[1:], strict=False)
    ]

    handle = ensure_daemon(COMMAND)

    assert not handle.reused
    wait_exit(old, timeout=10)
    for orphan in orphans:
        wait_exit(orphan, timeout=10)
    assert {e.port for e in handle.reaped.swept} == {o.port for o in orphans}
    assert listening_pids(lab.ranges.sync) == {**baseline, handle.port: handle.pid}
    assert _marked_pids(lab) == {handle.pid}
    state = read_state(lab.root, DaemonFamily.SYNC)
    assert state is not None
    assert (state.pid, state.package_version) == (handle.pid, handle.state.package_version)
    assert state.pid != old.pid
