"""INT-02 ambiguous survivors: daemons kitty cannot prove safe are never stopped unasked (S7).

* A pre-marker daemon (entry signature only, no markers at all — not an empty marker), a
  cross-HOME daemon (root marker of another temp home), a wedged-`accept` and a wedged-`backlog`
  daemon are `operator_required` with exactly `pre_marker`, `cross_root`, `unresponsive`,
  `unresponsive`; they are alive after `ensure_daemon` and after `kitty-doctor --reset`, and
  `kitty-doctor --reset --force` puts each in `swept` (process really gone) or `failed` with a
  reason.
* PID reuse: a state record naming a live unrelated sleeper with a different start time → the
  sleeper is never signalled, and the record is dropped (by `ensure_daemon`, which spawns the
  real singleton, or by `kitty-doctor --reset`).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from _daemons import Lab, open_lab, run_doctor, start_daemon, start_sleeper
from _harness import Running, mask_secrets, port_block, wait_exit
from kitty_daemon_identity import (
    DAEMON_PROTOCOL_VERSION,
    DaemonFamily,
    StateRecord,
    __version__,
    process_start_time,
    read_state,
    scope_id,
    write_state,
)
from kitty_orphan_sweep import ensure_daemon, scan

COMMAND = [sys.executable, "-m", "kitty_daemon_identity", "--family", "sync"]


@pytest.fixture
def lab(tmp_path: Path, kitty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    with open_lab(tmp_path, kitty_home, port_block(1), monkeypatch) as lab:
        yield lab


def _ambiguous(lab: Lab) -> dict[str, Running]:
    ports = list(lab.ranges.sync)[5:]
    p, home = lab.procs, lab.home
    return {
        "pre_marker": start_daemon(p, home, port=ports[0], markers=False, name="pre-marker"),
        "cross_root": start_daemon(p, lab.other_home("elsewhere"), port=ports[1], name="cross"),
        "unresponsive/accept": start_daemon(p, home, port=ports[2], wedge="accept"),
        "unresponsive/backlog": start_daemon(p, home, port=ports[3], wedge="backlog"),
    }


def _reasons(records: list[dict[str, object]]) -> dict[int, tuple[object, object]]:
    return {int(str(r["port"])): (r["cleanup_class"], r["skip_reason"]) for r in records}


@pytest.mark.timeout(120)
def test_ambiguous_daemons_survive_until_forced(lab: Lab) -> None:
    scene = _ambiguous(lab)
    expected = {d.port: ("operator_required", k.split("/")[0]) for k, d in scene.items()}

    records = scan(DaemonFamily.SYNC)
    assert _reasons([r.to_dict() for r in records]) == expected

    handle = ensure_daemon(COMMAND)
    assert handle.reaped.swept == ()
    assert {s.port: ("operator_required", s.skip_reason) for s in handle.reaped.skipped} == expected
    assert all(d.alive() for d in scene.values())

    plain = run_doctor("--reset", "--json", "--family", "sync", home=lab.home)
    code = plain.returncode  # not the process object: its repr holds the output
    assert code in (0, 1), mask_secrets(plain.stderr)
    report = json.loads(plain.stdout)
    reset = report["repairs"]["reset"]
    assert reset["swept"] == []
    assert reset["failed"] == []
    assert {s["port"] for s in reset["skipped"]} >= set(expected)
    assert _reasons(report["orphans"]["sync"]) == expected
    assert all(d.alive() for d in scene.values())

    forced = run_doctor("--reset", "--force", "--json", "--family", "sync", home=lab.home)
    code = forced.returncode  # not the process object: its repr holds the output
    assert code in (0, 1), mask_secrets(forced.stderr)
    reset = json.loads(forced.stdout)["repairs"]["reset"]
    swept = {e["port"] for e in reset["swept"]}
    failed = {e["port"]: e["failure_reason"] for e in reset["failed"]}
    assert swept | set(failed) == set(expected), reset
    assert all(failed.values()), failed
    for daemon in scene.values():
        if daemon.port in swept:
            wait_exit(daemon, timeout=10)
    # The recorded singleton is never an orphan: it survives --force.
    state = read_state(lab.root, DaemonFamily.SYNC)
    assert state is not None
    assert state.pid == handle.pid


def _record_naming(lab: Lab, sleeper: Running) -> StateRecord:
    started = process_start_time(sleeper.pid)
    assert started is not None
    record = StateRecord(
        family=DaemonFamily.SYNC,
        pid=sleeper.pid,
        port=lab.ranges.sync[3],  # nobody listens there
        process_started_at=started - 1000.0,  # the recorded daemon died; its PID was reused
        package_version=__version__,
        protocol_version=DAEMON_PROTOCOL_VERSION,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started - 1000.0)),
        instance_id=uuid.uuid4().hex,
        scope_id=scope_id(lab.root),
    )
    write_state(lab.root, record)
    return record


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ["ensure", "doctor-reset"])
def test_reused_pid_in_state_record_is_never_signalled(lab: Lab, path: str) -> None:
    sleeper = start_sleeper(lab.procs)
    _record_naming(lab, sleeper)

    if path == "ensure":
        handle = ensure_daemon(COMMAND)
        assert not handle.reused
        state = read_state(lab.root, DaemonFamily.SYNC)
        assert state is not None
        assert state.pid == handle.pid != sleeper.pid
    else:
        before = json.loads(run_doctor("--json", "--family", "sync", home=lab.home).stdout)
        assert "KD303" in {f["id"] for f in before["findings"]}
        result = run_doctor("--reset", "--json", "--family", "sync", home=lab.home)
        code = result.returncode  # not the process object: its repr holds the output
        assert code in (0, 1), mask_secrets(result.stderr)
        assert read_state(lab.root, DaemonFamily.SYNC) is None
        after = json.loads(result.stdout)
        assert "KD303" not in {f["id"] for f in after["findings"]}

    sleeper.settle()  # a signal sent before this point has been logged by now
    assert sleeper.alive()
    assert sleeper.signals() == []
