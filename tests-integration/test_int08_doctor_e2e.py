"""INT-08 doctor end-to-end: `kitty-doctor` as a real subprocess against a real, messy home.

The scene: a logged-in session from the Authlib test server; the refresh lock held by a live
subprocess past a lowered `--stuck-threshold`; a recorded sync singleton (`ensure_daemon`); a
stale same-scope daemon (3.2.2, `safe_auto`), a cross-root daemon, a wedged daemon and a
third-party web app in the sync range; a same-scope dashboard daemon in the dashboard range.

1. `--json` validates against the shipped schema, lists every in-range listener with the right
   class and reason, reports KD201 for the holder and exits 1; the run changed nothing, and with a
   hostile proxy in the environment the answer is the same and the proxy saw no connection.
2. SIGKILL the holder → KD202 (stale record); `--unstick-lock` clears it.
3. `--reset --json` sweeps exactly the `safe_auto` ones (their processes are gone, their ports
   closed), everything else is alive; `--reset --force --json` moves the cross-root and wedged
   daemons to swept/failed; the third-party listener and the singleton survive everything.
4. No access token, refresh token or scope key appears in any output, human or JSON.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from _auth_fixtures import assert_no_secret_in, assert_output_has, login_to_home, running_server
from _daemons import Lab, open_lab, run_doctor, start_counter, start_daemon, start_lock_holder
from _harness import Running, listening_pids, mask_secrets, port_block, wait_exit, wait_for
from kitty_orphan_sweep import ensure_daemon

THRESHOLD = "1"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def lab(tmp_path: Path, kitty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    with open_lab(tmp_path, kitty_home, port_block(2), monkeypatch) as lab:
        yield lab


@pytest.fixture(scope="module")
def schema() -> Any:
    text = (resources.files("kitty_doctor") / "schema" / "doctor-report.schema.json").read_text()
    return json.loads(text)


def _verdict(doc: dict[str, Any]) -> dict[str, Any]:
    """What a run concluded (timing-dependent numbers and wording left out)."""
    daemons = doc["daemons"]["sync"]
    return {
        "exit_code": doc["exit_code"],
        "findings": sorted(_ids(doc)),
        "orphans": {fam: _classes(doc, fam) for fam in ("sync", "dashboard")},
        "recorded": daemons and (daemons["recorded"]["pid"], daemons["health"]),
        "holder": doc["refresh_lock"]["holder_pid"],
        "identity": doc["identity"],
    }


class Doctor:
    """Runs kitty-doctor, keeps every byte it printed (for the token grep), validates JSON."""

    def __init__(self, lab: Lab, schema: Any) -> None:
        self.lab = lab
        self.validator = jsonschema.Draft202012Validator(schema)
        self.outputs: list[str] = []

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        result = run_doctor(*args, home=self.lab.home, env=env)
        self.outputs += [result.stdout, result.stderr]
        code = result.returncode  # not the process object: its repr holds the output
        assert code != 2, mask_secrets(result.stderr)
        return result.returncode, result.stdout

    def json(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        code, out = self.run("--json", *args, env=env)
        newlines, last = out.count("\n"), out[-1:]  # locals: pytest would print `out` raw
        assert (newlines, last) == (1, "\n"), "stdout carries exactly one JSON document"
        doc: dict[str, Any] = json.loads(out)
        self.validator.validate(doc)
        assert doc["exit_code"] == code
        return doc


def _classes(doc: dict[str, Any], family: str) -> dict[int, tuple[str, str | None]]:
    return {r["port"]: (r["cleanup_class"], r["skip_reason"]) for r in doc["orphans"][family]}


def _ids(doc: dict[str, Any]) -> set[str]:
    return {f["id"] for f in doc["findings"]}


@pytest.mark.timeout(120)
def test_doctor_end_to_end(lab: Lab, schema: Any) -> None:
    doctor = Doctor(lab, schema)
    sync, dash = list(lab.ranges.sync), list(lab.ranges.dashboard)
    with running_server(lab.workdir / "oauth") as server:
        session = login_to_home(server, lab.home)
    secrets = [session.access_token, session.refresh_token]

    holder = start_lock_holder(lab.procs, lab.home / "auth" / "refresh.lock")
    held_since = time.monotonic()
    singleton = ensure_daemon([sys.executable, "-m", "kitty_daemon_identity"])
    p, home = lab.procs, lab.home
    stale = start_daemon(p, home, port=sync[5], version="3.2.2")
    cross = start_daemon(p, lab.other_home("other-checkout"), port=sync[6], name="cross-root")
    wedged = start_daemon(p, home, port=sync[7], wedge="accept")
    web = start_counter(p, sync[8])
    board = start_daemon(p, home, family="dashboard", port=dash[3])
    proxy = start_counter(p, lab.ranges.dashboard.stop + 5)  # outside both ranges
    secrets += [(lab.root / "scope.key").read_text().strip()]
    secrets += [(lab.other_home("other-checkout") / "daemon" / "scope.key").read_text().strip()]
    # KD201 needs the hold to be older than the threshold: a local condition, not an ordering.
    wait_for(lambda: time.monotonic() - held_since > float(THRESHOLD) + 0.2, timeout=5, what="age")

    # 1. read-only diagnosis
    doc = doctor.json("--stuck-threshold", THRESHOLD)
    assert doc["exit_code"] == 1
    assert "KD201" in _ids(doc)
    kd201 = next(f for f in doc["findings"] if f["id"] == "KD201")
    assert kd201["remediation"]["command"] == f"kill {holder.pid}"
    assert doc["refresh_lock"]["held"] is True
    assert doc["refresh_lock"]["holder_pid"] == holder.pid
    assert doc["identity"]["state"] == "authenticated"
    assert doc["daemons"]["sync"]["recorded"]["pid"] == singleton.pid
    assert _classes(doc, "sync") == {
        stale.port: ("safe_auto", None),
        cross.port: ("operator_required", "cross_root"),
        wedged.port: ("operator_required", "unresponsive"),
        web.port: ("never_touch", "third_party"),
    }
    assert _classes(doc, "dashboard") == {board.port: ("safe_auto", None)}
    assert {"KD401", "KD402", "KD403"} <= _ids(doc)  # KD403: the live other home's daemon
    scene = [holder, stale, cross, wedged, web, board]
    assert all(proc.alive() for proc in scene), "a read-only run stopped something"
    assert listening_pids([singleton.port]) == {singleton.port: singleton.pid}

    hostile = dict.fromkeys(PROXY_VARS, f"http://127.0.0.1:{proxy.port}")
    proxied = doctor.json("--stuck-threshold", THRESHOLD, env=hostile)
    assert _verdict(proxied) == _verdict(doc)
    proxy.settle()
    assert proxy.connections() == 0

    code, human = doctor.run("--stuck-threshold", THRESHOLD)
    assert code == 1
    assert_output_has(human, "KD201", "human output")
    # Issue 15: what needs review reads in words, with what to decide on; no raw enum names.
    flat = " ".join(human.split())
    assert f"sync port {wedged.port} pid {wedged.pid}" in flat
    assert "needs your review: not answering for 0.5 s" in flat
    assert "started from another home" in flat
    assert f"owner {pwd.getpwuid(os.getuid()).pw_name}, up " in flat
    for raw in ("cross_root", "unresponsive)", "health_self_report", "http_shutdown", "pid None"):
        assert raw not in human, raw
    other = lab.other_home("other-checkout")
    kd403 = next(f for f in doc["findings"] if f["id"] == "KD403")
    assert kd403["remediation"]["command"].startswith(f"kitty-doctor --home {other} --reset")
    doctor.run("--stuck-threshold", THRESHOLD, "--verbose")

    # 2. the holder dies: its record goes stale; --unstick-lock clears it
    os.kill(holder.pid, signal.SIGKILL)
    wait_exit(holder, timeout=10)
    doc = doctor.json("--stuck-threshold", THRESHOLD)
    assert "KD201" not in _ids(doc)
    assert "KD202" in _ids(doc)
    assert doc["refresh_lock"]["stale_record"] is True
    doc = doctor.json("--unstick-lock", "--stuck-threshold", THRESHOLD)
    assert doc["repairs"]["unstick_lock"]["released"] is True
    assert "KD202" not in _ids(doc)

    # 3. --reset sweeps exactly the safe ones; --force takes the ambiguous ones
    doc = doctor.json("--reset")
    reset = doc["repairs"]["reset"]
    assert {e["port"] for e in reset["swept"]} == {stale.port, board.port}
    assert reset["failed"] == []
    for gone in (stale, board):
        wait_exit(gone, timeout=10)
    assert stale.port is not None  # start_daemon always binds the port it was given
    assert board.port is not None
    assert set(listening_pids([stale.port, board.port])) == set()
    survivors: list[Running] = [cross, wedged, web]
    assert all(proc.alive() for proc in survivors)
    assert _classes(doc, "sync") == {
        cross.port: ("operator_required", "cross_root"),
        wedged.port: ("operator_required", "unresponsive"),
        web.port: ("never_touch", "third_party"),
    }
    assert "KD401" not in _ids(doc)

    doc = doctor.json("--reset", "--force")
    reset = doc["repairs"]["reset"]
    swept = {e["port"] for e in reset["swept"]}
    failed = {e["port"]: e["failure_reason"] for e in reset["failed"]}
    assert swept | set(failed) == {cross.port, wedged.port}, reset
    assert all(failed.values())
    for proc in (cross, wedged):
        if proc.port in swept:
            wait_exit(proc, timeout=10)
    web.settle()
    assert web.alive()
    assert web.signals() == []
    assert listening_pids([singleton.port]) == {singleton.port: singleton.pid}
    assert doc["daemons"]["sync"]["recorded"]["pid"] == singleton.pid

    # 4. no secret anywhere
    assert all(len(secret) >= 16 for secret in secrets)
    for i, output in enumerate(doctor.outputs):
        # Names the leaked secret by index only: a failure message must not repeat the leak.
        assert_no_secret_in(output, secrets, f"doctor output #{i}")
    assert len(doctor.outputs) == 2 * 8  # every run above was grepped


@pytest.mark.timeout(120)
def test_demo_runs_clean() -> None:
    """INT-09: the newcomer's tour exits 0 with every expectation met and nothing left running."""
    import subprocess

    from _harness import HERE, child_env

    result = subprocess.run(
        [sys.executable, str(HERE / "demo.py")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=110,
        check=False,
    )
    code = result.returncode  # not the process object: its repr holds the output
    assert code == 0, mask_secrets(result.stdout[-3000:] + result.stderr[-2000:])
    assert_output_has(result.stdout, "all expectations met", "demo transcript")
    assert_output_has(result.stdout, "[FAIL]", "demo transcript", present=False)
    for step in ("$ kitty-doctor\n", "$ kitty-doctor --reset\n", "Two processes"):
        assert_output_has(result.stdout, step, "demo transcript")
