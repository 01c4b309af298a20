"""Issue 10 as an attacker on this machine would play it: one test per break, real processes.

Every listener an attacker controls logs each request it receives (request line, whether an
`Authorization` header came with it) on its stdout, which the test reads after stopping it; "no
key to a stranger" means no such line carries auth and none is a shutdown. Attackers that are
"another local user" run as `nobody` through `setpriv` (CI runs as root), with the system
interpreter and the standard library only, as a real second user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from _daemons import Lab, open_lab, run_doctor, start_daemon, write_state_for
from _harness import Running, as_user, port_block, second_user_python, wait_exit, wait_for
from kitty_daemon_identity import (
    DAEMON_PROTOCOL_VERSION,
    HEALTH_SCHEMA_VERSION,
    DaemonFamily,
    StateRecord,
    __version__,
    daemon_root,
    ensure_scope_key,
    marker_args,
    read_state,
    scope_id,
    write_state,
)
from kitty_orphan_sweep import ensure_daemon, probe_health, scan, sweep

SYNC_CMD = [sys.executable, "-m", "kitty_daemon_identity", "--family", "sync"]
IS_ROOT = hasattr(os, "getuid") and os.getuid() == 0
#: The attacker's interpreter as `nobody` (stdlib only, any version), or None: no second uid.
NOBODY_PYTHON = second_user_python()
CAN_SETPRIV = NOBODY_PYTHON is not None
NOBODY = 65534
CONTROL_BYTES = (b"\x1b", b"\x07", b"\x9b")

#: A listener that answers every request with a health payload of its choosing (its own pid and
#: start time filled in when the claim leaves them null) and logs what it was sent.
ATTACKER = r"""
import json, os, socket, sys, threading
port, claim = int(sys.argv[1]), json.loads(sys.argv[2])
def started():
    with open("/proc/self/stat") as fh:
        ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as fh:
        boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
    return boot + ticks / os.sysconf("SC_CLK_TCK")
if claim.get("pid") is None:
    claim["pid"] = os.getpid()
if claim.get("process_started_at") is None:
    claim["process_started_at"] = started()
body = json.dumps(claim).encode()
srv = socket.create_server(("127.0.0.1", port))
print(f"READY pid={os.getpid()}", flush=True)
out = threading.Lock()
def serve(conn):
    with conn:
        conn.settimeout(2)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        if not data:
            return
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        with out:
            auth = int("authorization:" in head.lower())
            print(f"REQ {head.splitlines()[0]} auth={auth}", flush=True)
        try:
            conn.sendall(
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
        except OSError:
            pass
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

#: Our own process, alive with our root marker, that holds no port (a daemon that released it).
RELEASED = "import os, time; print(f'READY pid={os.getpid()}', flush=True); time.sleep(600)"


@pytest.fixture
def lab(tmp_path: Path, kitty_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    with open_lab(tmp_path, kitty_home, port_block(10), monkeypatch) as lab:
        yield lab


def _claim(root: Path, port: int, **fields: Any) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "schema_version": HEALTH_SCHEMA_VERSION,
        "status": "ok",
        "daemon_family": "sync",
        "protocol_version": DAEMON_PROTOCOL_VERSION,
        "package_version": __version__,
        "singleton_scope_id": scope_id(root),
        "daemon_root": str(root),
        "pid": None,
        "port": port,
        "process_started_at": None,
        "started_at": "2026-12-01T00:00:00Z",
        "busy": False,
        "idle_s": 0.0,
        "instance_id": "0" * 32,
    }
    return claim | fields


def _attacker(
    lab: Lab, port: int, claim: dict[str, Any], *, nobody: bool, argv: tuple[str, ...] = ()
) -> Running:
    python = str(NOBODY_PYTHON) if nobody else sys.executable
    prefix = as_user(NOBODY) if nobody else []
    full = [*prefix, python, "-c", ATTACKER, str(port), json.dumps(claim), *argv]
    return lab.procs.launch(full, name=f"attacker-{port}", deaf=True)


def _requests(attacker: Running) -> list[str]:
    """Stop the attacker and return every request line it logged."""
    attacker.proc.kill()
    attacker.proc.wait(timeout=10)
    assert attacker.proc.stdout is not None
    text = attacker.proc.stdout.read().decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.startswith("REQ ")]


def _assert_no_key(requests: list[str]) -> None:
    assert not [r for r in requests if "auth=1" in r or "/api/shutdown" in r], requests
    assert requests, "the attacker saw no request at all: the test proves nothing"


def _record(pid: int, port: int, root: Path, **fields: Any) -> StateRecord:
    base: dict[str, Any] = {
        "family": DaemonFamily.SYNC,
        "pid": pid,
        "port": port,
        "process_started_at": psutil.Process(pid).create_time(),
        "package_version": __version__,
        "protocol_version": DAEMON_PROTOCOL_VERSION,
        "started_at": "2026-12-01T00:00:00Z",
        "instance_id": "0" * 32,
        "scope_id": scope_id(root),
    }
    return StateRecord(**(base | fields))


def _doctor_json(lab: Lab, *args: str) -> dict[str, Any]:
    done = run_doctor("--json", "--family", "sync", *args, home=lab.home)
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


# -- 1. the scope key to a squatter on a released port ------------------------------------------


@pytest.mark.parametrize(
    "who",
    [
        "same_uid",
        pytest.param("other_uid", marks=pytest.mark.skipif(not CAN_SETPRIV, reason="root+setpriv")),
    ],
)
def test_squatter_on_a_released_port_never_gets_the_key(lab: Lab, who: str) -> None:
    ensure_scope_key(lab.root)
    port = lab.ranges.sync[0]
    ours = lab.procs.launch(
        [sys.executable, "-c", RELEASED, *marker_args(lab.root, sys.executable)], name="released"
    )
    record = _record(ours.pid, port, lab.root)
    write_state(lab.root, record)
    claim = _claim(lab.root, port, pid=record.pid, process_started_at=record.process_started_at)
    squatter = _attacker(lab, port, claim, nobody=who == "other_uid")
    doc = _doctor_json(lab)
    assert doc["daemons"]["sync"]["health"] == "impostor"
    assert "KD305" in [f["id"] for f in doc["findings"]]
    human = run_doctor("--family", "sync", home=lab.home).stdout
    assert " healthy" not in human
    _doctor_json(lab, "--reset")
    _doctor_json(lab, "--reset", "--force", "--yes")
    write_state(lab.root, record)  # the forced reset stopped `ours`; the record comes back
    handle = ensure_daemon(SYNC_CMD, home=lab.home)
    assert handle.pid != squatter.pid
    assert handle.port != port
    _assert_no_key(_requests(squatter))


# -- 2. a root operator, a `nobody` listener with a forged marker --------------------------------


@pytest.mark.skipif(not CAN_SETPRIV, reason="needs root and setpriv for a second uid")
@pytest.mark.parametrize("marker", ["our_root", "another_of_roots_homes"])
def test_root_never_hands_a_key_to_another_users_forged_listener(lab: Lab, marker: str) -> None:
    ensure_scope_key(lab.root)
    other = daemon_root(lab.other_home("roots-other-home"))
    other.mkdir(mode=0o700, exist_ok=True)
    ensure_scope_key(other)
    forged_root = lab.root if marker == "our_root" else other
    port = lab.ranges.sync[1]
    forged = _attacker(
        lab,
        port,
        _claim(forged_root, port),
        nobody=True,
        argv=tuple(marker_args(forged_root, sys.executable)),
    )
    _doctor_json(lab, "--reset")
    _doctor_json(lab, "--reset", "--force", "--yes")
    handle = ensure_daemon(SYNC_CMD, home=lab.home)
    assert handle.pid != forged.pid
    assert forged.alive()  # another user's process: never signalled, whatever its argv says
    _assert_no_key(_requests(forged))


# -- 3. a state record naming a process that is not ours -----------------------------------------


@pytest.mark.parametrize("victim", ["sleep", "third_party_http_server"])
def test_a_state_record_alone_never_gets_a_process_killed(lab: Lab, victim: str) -> None:
    port = lab.ranges.sync[2]
    if victim == "sleep":
        argv = ["sleep", "600"]
    else:
        argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    proc = lab.procs.popen(argv, name=victim)
    if victim != "sleep":
        wait_for(
            lambda: probe_health([port], 0.5)[port].outcome.value != "refused",
            timeout=20,
            what="http.server to listen",
        )
    wait_for(lambda: psutil.Process(proc.pid).cmdline()[:1] == argv[:1], timeout=10, what="exec")
    write_state(lab.root, _record(proc.pid, port, lab.root))
    doc = _doctor_json(lab)
    assert doc["daemons"]["sync"]["health"] == "foreign"
    _doctor_json(lab, "--reset", "--force", "--yes")
    assert proc.poll() is None
    write_state(lab.root, _record(proc.pid, port, lab.root))
    handle = ensure_daemon(SYNC_CMD, home=lab.home)
    assert handle.pid != proc.pid
    assert proc.poll() is None
    assert read_state(lab.root) == handle.state


# -- 4. another home's live singleton and a typo'd --home ----------------------------------------


@pytest.mark.parametrize("home_b", ["another_home", "a_home_that_does_not_exist"])
def test_another_homes_singleton_survives_any_flags_from_elsewhere(lab: Lab, home_b: str) -> None:
    home_a = lab.other_home("home-a")
    singleton = ensure_daemon(SYNC_CMD, home=home_a)
    b = lab.home if home_b == "another_home" else lab.workdir / "no-such-home"
    done = run_doctor("--json", "--home", str(b), "--reset", "--force", "--yes", home=b)
    assert psutil.pid_exists(singleton.pid)
    assert probe_health([singleton.port], 2.0)[singleton.port].payload is not None
    doc = json.loads(done.stdout)
    if home_b == "another_home":
        rec = next(r for r in doc["orphans"]["sync"] if r["port"] == singleton.port)
        assert (rec["cleanup_class"], rec["skip_reason"]) == ("never_touch", "other_home_singleton")
    else:
        assert doc["home"]["exists"] is False  # said at the top of the human report, too
    commands = [(f.get("remediation") or {}).get("command") or "" for f in doc["findings"]]
    assert not [c for c in commands if "--force" in c], commands
    os.kill(singleton.pid, signal.SIGTERM)
    wait_for(
        lambda: (
            not psutil.pid_exists(singleton.pid)
            or psutil.Process(singleton.pid).status() == psutil.STATUS_ZOMBIE
        ),
        timeout=10,
        what="singleton exit",
    )


# -- 5. a recycled PID for a pre-marker record ---------------------------------------------------


NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


def _spawn_with_pid(lab: Lab, pid: int, port: int) -> Running | None:
    """Steer the next PID to `pid` (root only); None if another fork took it first."""
    NS_LAST_PID.write_text(str(pid - 1))
    running = start_daemon(lab.procs, lab.home, port=port, markers=False, name="recycled")
    return running if running.pid == pid else None


@pytest.mark.skipif(
    not IS_ROOT or not os.access(NS_LAST_PID, os.W_OK), reason="needs a writable ns_last_pid"
)
def test_a_recycled_pid_of_a_pre_marker_record_is_never_signalled(lab: Lab) -> None:
    port = lab.ranges.sync[3]
    recycled: Running | None = None
    for _ in range(5):
        old = start_daemon(lab.procs, lab.home, port=port, markers=False, name="pre-marker")
        records = scan("sync", home=lab.home)
        assert [r.skip_reason for r in records if r.port == port] == ["pre_marker"]
        old.proc.kill()
        wait_exit(old, 10)
        recycled = _spawn_with_pid(lab, old.pid, port)
        if recycled is not None:
            break
        recycled_other = lab.procs.started[-1]
        recycled_other.proc.kill()
        wait_exit(recycled_other, 10)
    if recycled is None:
        pytest.skip("another process kept taking the steered PID")
    # Same PID, same argv shape, same port; only the create time tells them apart.
    result = sweep(records, force=True, home=lab.home, family="sync")
    assert [e.failure_reason.value for e in result.failed] == ["identity_changed"]
    assert recycled.alive()


# -- 6. slowloris -------------------------------------------------------------------------------


def test_a_thousand_slow_connections_cannot_unseat_the_singleton(lab: Lab) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2200:
        pytest.skip(f"this process may open only {hard} descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2200), hard))
    port = lab.ranges.sync[4]
    daemon = lab.procs.launch(
        ["prlimit", "--nofile=1024:1024", *_daemon_argv(lab, port)], name="limited-daemon"
    )
    write_state_for(lab.home, daemon)
    slow: list[socket.socket] = []
    try:
        for _ in range(1000):
            with contextlib.suppress(OSError):
                conn = socket.create_connection(("127.0.0.1", port), timeout=2)
                conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never finished
                slow.append(conn)
        handle = ensure_daemon(SYNC_CMD, home=lab.home)
        assert (handle.pid, handle.reused) == (daemon.pid, True)
        assert probe_health([port], 2.0)[port].payload is not None
    finally:
        for conn in slow:
            conn.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(slow) == 1000


def _daemon_argv(lab: Lab, port: int) -> list[str]:
    from _daemons import daemon_argv

    return daemon_argv(lab.home, port=port)


# -- 7. terminal injection -----------------------------------------------------------------------


HOSTILE = "\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\u009b31m0 critical"


def test_no_control_byte_from_outside_reaches_the_terminal(lab: Lab) -> None:
    port = lab.ranges.sync[5]
    claim = _claim(
        lab.root,
        port,
        package_version=HOSTILE,
        daemon_root=HOSTILE,
        singleton_scope_id=HOSTILE,
        started_at=HOSTILE,
    )
    hostile = _attacker(lab, port, claim, nobody=False, argv=(HOSTILE,))
    auth = lab.home / "auth"
    auth.mkdir(mode=0o700, exist_ok=True)
    stale = {"pid": 999_999, "host": HOSTILE, "label": HOSTILE, "mode": "flock",
             "acquired_at": "2020-01-01T00:00:00+00:00"}  # fmt: skip
    (auth / "refresh.lock").write_text(json.dumps(stale))
    sleeper = lab.procs.popen(["sleep", "600"], name="sleep")
    wrong = _record(sleeper.pid, port + 1, lab.root, package_version=HOSTILE)
    write_state(lab.root, wrong)
    for args in ((), ("--verbose",), ("--reset",), ("--unstick-lock", "--stuck-threshold", "0")):
        done = subprocess.run(
            [sys.executable, "-m", "kitty_doctor", "--family", "sync", *args],
            capture_output=True,
            env=dict(os.environ, KITTY_HOME=str(lab.home), COLUMNS="120"),
            timeout=60,
            check=False,
        )
        for byte in CONTROL_BYTES:
            assert byte not in done.stdout, (args, byte)
            assert byte not in done.stderr, (args, byte)
    (auth / "refresh.lock").write_text(json.dumps(stale))  # --unstick-lock cleared it
    write_state(lab.root, wrong)  # and --reset removed the wrong record
    doc = _doctor_json(lab)  # --json stays exact JSON, the hostile strings as they came
    assert doc["refresh_lock"]["record"]["label"] == HOSTILE
    assert doc["daemons"]["sync"]["recorded"]["package_version"] == HOSTILE
    hostile.proc.kill()


# -- 8. the lock holder is the process the OS shows, never a dead pid ----------------------------


HANDOFF = r"""
import os, subprocess, sys
from kitty_filelock import MachineFileLock
path = sys.argv[1]
MachineFileLock(path, label="refresh").acquire()
real = os.path.realpath(path)
fd = next(int(n) for n in os.listdir("/proc/self/fd")
          if os.path.realpath(f"/proc/self/fd/{n}") == real)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "holder"],
                         pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
print(child.pid, flush=True)
os._exit(0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc fdinfo is Linux")
def test_a_forked_child_holding_the_lock_is_named_not_the_dead_taker(lab: Lab) -> None:
    lock = lab.home / "auth" / "refresh.lock"
    lock.parent.mkdir(mode=0o700, exist_ok=True)
    taker = subprocess.run(
        [sys.executable, "-c", HANDOFF, str(lock)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    child = int(taker.stdout.strip())
    try:
        doc = _doctor_json(lab, "--stuck-threshold", "0")
        kd201 = next(f for f in doc["findings"] if f["id"] == "KD201")
        assert kd201["remediation"]["command"] == f"kill {child}"
        dead = doc["refresh_lock"]["holder_pid"]
        assert dead != child
        assert not psutil.pid_exists(dead)
        human = run_doctor("--stuck-threshold", "0", "--unstick-lock", home=lab.home).stdout
        assert f"kill {child}" in human
        assert not re.search(rf"kill {dead}\b", human)
    finally:
        os.kill(child, signal.SIGKILL)
