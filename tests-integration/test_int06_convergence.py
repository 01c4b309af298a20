"""INT-06 convergence: many callers and many daemons of one scope end with exactly one daemon.

* K = 10 processes call `ensure_daemon` released by one file barrier → one spawn, every handle
  names the same pid and port, and the kernel's socket table shows exactly one listener in range.
* K = 10 reference daemons started directly (no lock, tick 0.5 s) plus a state record naming
  one → every other one retires as `superseded`; the recorded one stays.
* A busy daemon does not retire while busy, however many ticks pass, and retires once idle.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _daemons import Lab, open_lab, start_busy_daemon, start_daemon, write_state_for
from _harness import child_argv, listening_pids, port_block, wait_exit, wait_for
from kitty_daemon_identity import DaemonFamily, read_state

K = 10
TICK_S = 0.5


@pytest.fixture
def lab(tmp_path: Path, kitty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    with open_lab(tmp_path, kitty_home, port_block(6, size=12), monkeypatch) as lab:
        yield lab


@pytest.mark.timeout(90)
def test_ten_concurrent_ensure_callers_produce_one_daemon(lab: Lab) -> None:
    go = lab.workdir / "go"
    ready = [lab.workdir / f"ready-{i}" for i in range(K)]
    outs = [lab.workdir / f"out-{i}.json" for i in range(K)]
    workers = [
        lab.procs.popen(
            child_argv("daemon", "ensure", "--ready", str(r), "--go", str(go), "--out", str(o)),
            name=f"ensure-{i}",
        )
        for i, (r, o) in enumerate(zip(ready, outs, strict=True))
    ]
    wait_for(lambda: all(r.exists() for r in ready), timeout=60, what="all callers at the barrier")
    go.touch()  # one release for all ten
    for worker in workers:
        assert worker.wait(timeout=60) == 0, f"ensure worker {worker.pid} failed"
    handles = [json.loads(o.read_text()) for o in outs]

    assert len({(h["pid"], h["port"]) for h in handles}) == 1, handles
    assert sum(not h["reused"] for h in handles) == 1, "exactly one caller spawns"
    pid, port = handles[0]["pid"], handles[0]["port"]
    assert port in lab.ranges.sync
    assert listening_pids(lab.ranges.sync) == {port: pid}
    state = read_state(lab.root, DaemonFamily.SYNC)
    assert state is not None
    assert (state.pid, state.port) == (pid, port)


@pytest.mark.timeout(90)
def test_superseded_daemons_retire_and_the_recorded_one_stays(lab: Lab) -> None:
    ports = list(lab.ranges.sync)[:K]
    daemons = [start_daemon(lab.procs, lab.home, port=p, tick=TICK_S) for p in ports]
    singleton, others = daemons[0], daemons[1:]
    write_state_for(lab.home, singleton)
    started = time.monotonic()
    codes = [wait_exit(d, timeout=15) for d in others]
    elapsed = time.monotonic() - started
    print(f"INT-06: {len(others)} superseded daemons retired {elapsed:.2f} s after the record")

    assert codes == [0] * len(others)
    for daemon in others:
        assert "retiring (superseded)" in daemon.stderr(), daemon.stderr()[-500:]
    assert singleton.alive()
    assert "retiring" not in singleton.stderr()
    assert listening_pids(lab.ranges.sync) == {singleton.port: singleton.pid}


@pytest.mark.timeout(90)
def test_busy_daemon_waits_until_not_busy(lab: Lab) -> None:
    busy_file = lab.workdir / "busy"
    busy_file.touch()
    ticks = lab.workdir / "ticks"
    ports = list(lab.ranges.sync)
    singleton = start_daemon(lab.procs, lab.home, port=ports[0], tick=TICK_S)
    busy = start_busy_daemon(
        lab.procs, lab.home, port=ports[1], busy_file=busy_file, ticks_file=ticks, tick=TICK_S
    )

    def lines() -> list[str]:
        return ticks.read_text().splitlines() if ticks.exists() else []

    write_state_for(lab.home, singleton)
    before = len(lines())
    # Three ticks that all saw the record naming another live daemon: rule 1 (busy) held each time.
    wait_for(lambda: len(lines()) >= before + 3, timeout=20, what="three busy ticks")
    assert all(line == "busy retire=False" for line in lines()), lines()
    assert busy.alive()

    busy_file.unlink()
    assert wait_exit(busy, timeout=15) == 0
    assert lines()[-1] == "exit superseded", lines()
    assert "retiring (superseded)" in busy.stderr()
    assert singleton.alive()
