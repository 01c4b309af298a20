"""ensure_daemon(): reuse-or-spawn with startup reaping, replacement, races and convergence."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

import kitty_daemon_identity as kdi
from _orphan_sweep_helpers import (
    CountingListener,
    Env,
    ProcessPool,
    kill_and_reap,
    processes_with_marker_under,
    read_line,
    record_singleton,
)
from kitty_daemon_identity import (
    DaemonFamily,
    StateRecord,
    daemon_root,
    log_path,
    marker_args,
    read_state,
    scope_id,
    write_state,
)
from kitty_orphan_sweep import (
    CleanupPath,
    DaemonStartError,
    DaemonUnresponsiveError,
    NoFreePortError,
    _ensure,
    ensure_daemon,
    scan,
)
from kitty_orphan_sweep import _constants as C
from kitty_orphan_sweep._net import connect_probe, port_refuses

SYNC_CMD = [sys.executable, "-m", "kitty_daemon_identity", "--family", "sync"]
DASH_CMD = [sys.executable, "-m", "kitty_daemon_identity", "--family", "dashboard"]


def _daemons(home: Path) -> list[psutil.Process]:
    return [p for p in processes_with_marker_under(home) if p.is_running()]


def test_first_call_spawns_second_reuses_and_reaps_a_stale_orphan(
    env: Env, pool: ProcessPool
) -> None:
    first = ensure_daemon(SYNC_CMD, home=env.home)
    assert not first.reused
    assert first.port == env.sync[0]
    assert first.base_url == f"http://127.0.0.1:{first.port}"
    assert read_state(daemon_root(env.home)) == first.state
    log = log_path(daemon_root(env.home), DaemonFamily.SYNC)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    stale = pool.reference(env.home, env.sync[3], args=["--advertise-version", "3.2.2"])
    second = ensure_daemon(SYNC_CMD, home=env.home)
    assert second.reused
    assert (second.pid, second.port) == (first.pid, first.port)
    assert [(e.port, e.cleanup_path) for e in second.reaped.swept] == [
        (stale.port, CleanupPath.HTTP_SHUTDOWN)
    ]
    assert not stale.alive()
    assert [p.pid for p in _daemons(env.home)] == [first.pid]
    assert sorted(connect_probe(env.sync, 0.2)) == [first.port]


def test_spawned_daemon_that_exits_is_reaped_not_left_a_zombie(env: Env) -> None:
    handle = ensure_daemon(SYNC_CMD, home=env.home)
    child = psutil.Process(handle.pid)
    assert child.ppid() == os.getpid()  # a detached daemon is still our child
    os.kill(handle.pid, 9)  # as if it retired or was swept by another process
    # Nobody here waits for it: only ensure_daemon's own reaper can clear the zombie.
    deadline = time.monotonic() + 10  # hang cap, not a timing target
    while psutil.pid_exists(handle.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not psutil.pid_exists(handle.pid)


def test_incompatible_singleton_is_replaced_by_exactly_one(env: Env, pool: ProcessPool) -> None:
    old = pool.reference(env.home, env.sync[0], args=["--advertise-version", "0.0.1"])
    record_singleton(env.home, old)
    orphan = pool.reference(env.home, env.sync[1], args=["--advertise-version", "3.2.3"])
    handle = ensure_daemon(SYNC_CMD, home=env.home)
    assert not handle.reused
    assert handle.pid not in (old.pid, orphan.pid)
    assert not old.alive()
    assert not orphan.alive()
    assert [p.pid for p in _daemons(env.home)] == [handle.pid]
    assert sorted(connect_probe(env.sync, 0.2)) == [handle.port]


def test_record_naming_an_unrelated_live_process_never_touches_it(
    env: Env, pool: ProcessPool
) -> None:
    sleeper = pool.sleeper()
    started = psutil.Process(sleeper.pid).create_time()
    write_state(
        daemon_root(env.home),
        StateRecord(
            family=DaemonFamily.SYNC,
            pid=sleeper.pid,
            port=env.sync[0],
            process_started_at=started - 3600.0,
            package_version="0.1.0",
            protocol_version=1,
            started_at="2025-01-01T00:00:00Z",
            instance_id="0" * 32,
            scope_id="x",
        ),
    )
    handle = ensure_daemon(SYNC_CMD, home=env.home)
    assert sleeper.alive()
    state = read_state(daemon_root(env.home))
    assert state is not None
    assert state.pid == handle.pid != sleeper.pid


IMPOSTOR = """
import http.server, sys
body = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("READY", flush=True)
srv.serve_forever()
"""


def test_listener_repeating_a_dead_singletons_identity_is_not_reused(
    env: Env, pool: ProcessPool
) -> None:
    """After the recorded daemon died, a listener on its port claims its exact identity."""
    dead = pool.sleeper()
    started = psutil.Process(dead.pid).create_time()
    kill_and_reap(dead.proc)
    root = daemon_root(env.home)
    record = StateRecord(
        family=DaemonFamily.SYNC,
        pid=dead.pid,
        port=env.sync[0],
        process_started_at=started,
        package_version=kdi.__version__,
        protocol_version=kdi.DAEMON_PROTOCOL_VERSION,
        started_at="2025-01-01T00:00:00Z",
        instance_id="0" * 32,
        scope_id=scope_id(root),
    )
    write_state(root, record)
    claim = {
        "schema_version": kdi.HEALTH_SCHEMA_VERSION,
        "status": "ok",
        "daemon_family": "sync",
        "protocol_version": record.protocol_version,
        "package_version": record.package_version,
        "singleton_scope_id": record.scope_id,
        "daemon_root": str(root),
        "pid": record.pid,
        "port": record.port,
        "process_started_at": record.process_started_at,
        "started_at": record.started_at,
        "busy": False,
        "idle_s": 0.0,
        "instance_id": record.instance_id,
    }
    impostor = pool.python(IMPOSTOR, env.sync[0], json.dumps(claim))
    handle = ensure_daemon(SYNC_CMD, home=env.home)
    assert not handle.reused
    assert (handle.pid, handle.port) != (dead.pid, impostor.port)
    assert read_state(root) == handle.state
    assert impostor.alive()  # not ours to stop: it is just never trusted


CHILD_IMPOSTOR = """
import http.server, json, os, sys
import psutil
marker, claim = sys.argv[2], json.loads(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        # Name whichever process carries the spawner's root marker: the child being started.
        pids = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if p.pid != os.getpid() and marker in (p.info["cmdline"] or [])
        ]
        body = json.dumps({**claim, "pid": pids[0] if pids else 1}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("READY", flush=True)
srv.serve_forever()
"""


def test_listener_naming_the_starting_child_is_not_taken_for_it(
    env: Env, pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener that won the port race answers health with our child's (public) pid."""
    root = daemon_root(env.home)
    port = env.sync[0]
    claim = {
        "schema_version": kdi.HEALTH_SCHEMA_VERSION,
        "status": "ok",
        "daemon_family": "sync",
        "protocol_version": kdi.DAEMON_PROTOCOL_VERSION,
        "package_version": kdi.__version__,
        "singleton_scope_id": scope_id(root),
        "daemon_root": str(root),
        "port": port,
        "process_started_at": 1.0,
        "started_at": "2025-01-01T00:00:00Z",
        "busy": False,
        "idle_s": 0.0,
        "instance_id": "0" * 32,
    }
    marker = marker_args(root, sys.executable)[0]
    pool.python(CHILD_IMPOSTOR, port, marker, json.dumps(claim))
    # Unit seam: the port race already lost (the impostor bound the port we picked).
    monkeypatch.setattr(_ensure, "_free_port", lambda family, skip: port)
    never_binds = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(DaemonStartError, match="did not become healthy"):
        ensure_daemon(never_binds, home=env.home, spawn_timeout=2.0)
    assert read_state(root) is None


def test_recorded_daemon_that_stopped_answering_is_neither_killed_nor_doubled(
    env: Env, pool: ProcessPool
) -> None:
    wedged = pool.reference(env.home, env.sync[0])
    record_singleton(env.home, wedged)
    wedged.proc.send_signal(19)  # SIGSTOP: alive, holds its port, but silent
    try:
        with pytest.raises(DaemonUnresponsiveError) as info:
            ensure_daemon(SYNC_CMD, home=env.home)
        assert (info.value.pid, info.value.port) == (wedged.pid, env.sync[0])
        assert f"pid {wedged.pid}" in str(info.value)
        assert psutil.Process(wedged.pid).is_running()
        assert read_state(daemon_root(env.home), DaemonFamily.SYNC) is not None  # kept
        # no second daemon anywhere in the range
        assert [p for p in env.sync if not port_refuses(p, 0.2)] == [env.sync[0]]
    finally:
        wedged.proc.send_signal(18)  # SIGCONT so teardown can reap it normally


def test_daemon_dying_during_start_raises_with_log_tail(env: Env) -> None:
    cmd = [
        sys.executable,
        "-c",
        "import sys; print('boom: config is broken', flush=True); sys.exit(7)",
    ]
    with pytest.raises(DaemonStartError) as info:
        ensure_daemon(cmd, home=env.home)
    assert info.value.exit_code == 7
    assert "boom: config is broken" in info.value.log_tail
    assert "exit code 7" in str(info.value)
    assert "boom" in str(info.value)


def test_daemon_never_healthy_is_killed_and_reported(env: Env) -> None:
    cmd = [sys.executable, "-c", "import time; print('starting', flush=True); time.sleep(60)"]
    with pytest.raises(DaemonStartError, match="did not become healthy") as info:
        ensure_daemon(cmd, home=env.home, spawn_timeout=0.5)
    assert info.value.exit_code is not None  # the child was killed and reaped
    assert not _daemons(env.home)


def test_port_race_retries_then_gives_up(env: Env) -> None:
    cmd = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(DaemonStartError, match="lost the race") as info:
        ensure_daemon(cmd, home=env.home)
    assert f"{list(env.sync[:4])}" in str(info.value)


def test_no_free_port_names_the_range(env: Env) -> None:
    squatters = [CountingListener(p) for p in env.sync]
    try:
        with pytest.raises(NoFreePortError, match=f"{env.sync.start}-{env.sync.stop}"):
            ensure_daemon(SYNC_CMD, home=env.home)
    finally:
        for s in squatters:
            s.close()


def test_new_home_and_daemon_root_are_private(tmp_path: Path, env: Env) -> None:
    home = tmp_path / "fresh" / "home"
    handle = ensure_daemon(SYNC_CMD, home=home)
    assert handle.port == env.sync[0]
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(daemon_root(home).stat().st_mode) == 0o700


def test_log_is_rotated_before_spawn(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(C, "LOG_ROTATE_BYTES", 100)
    root = daemon_root(env.home)
    root.mkdir(mode=0o700, parents=True)
    log = root / "dashboard.log"
    log.write_bytes(b"old line\n" * 50)
    handle = ensure_daemon(DASH_CMD, family="dashboard", home=env.home)
    assert handle.port == env.dashboard[0]
    assert (root / "dashboard.log.1").read_bytes() == b"old line\n" * 50
    assert b"old line" not in log.read_bytes()


def test_families_are_isolated(env: Env, pool: ProcessPool) -> None:
    sync_orphan = pool.reference(env.home, env.sync[0])
    dash_orphan = pool.reference(env.home, env.dashboard[0], family="dashboard")
    handle = ensure_daemon(DASH_CMD, family="dashboard", home=env.home)
    assert [e.port for e in handle.reaped.swept] == [dash_orphan.port]
    assert sync_orphan.alive()
    assert not dash_orphan.alive()
    assert [r.port for r in scan("sync")] == [sync_orphan.port]


def test_bad_arguments_are_rejected_before_anything_happens(env: Env) -> None:
    with pytest.raises(ValueError, match="non-empty argv list"):
        ensure_daemon([], home=env.home)
    with pytest.raises(ValueError, match="non-empty argv list"):
        ensure_daemon("python -m x", home=env.home)
    with pytest.raises(ValueError, match="non-empty strings"):
        ensure_daemon([sys.executable, ""], home=env.home)
    with pytest.raises(ValueError, match="spawn_timeout"):
        ensure_daemon(SYNC_CMD, home=env.home, spawn_timeout=0)
    with pytest.raises(ValueError, match="unknown daemon family"):
        ensure_daemon(SYNC_CMD, home=env.home, family="mail")
    assert not daemon_root(env.home).exists()


WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from kitty_orphan_sweep import ensure_daemon
    go = sys.argv[1]
    print("READY", flush=True)
    for _ in range(6000):  # bounded wait for the shared go-file barrier
        if os.path.exists(go):
            break
        time.sleep(0.005)
    h = ensure_daemon(sys.argv[2:], home=os.environ["KITTY_HOME"])
    print(json.dumps({"pid": h.pid, "port": h.port, "reused": h.reused}), flush=True)
    """
)


def test_ten_threads_and_ten_processes_converge_on_one_daemon(
    env: Env, pool: ProcessPool, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    # Stale same-scope daemons in the range must be reaped, never cause a second daemon.
    stale = [
        pool.reference(env.home, env.sync[6], args=["--advertise-version", "3.2.2"]),
        pool.reference(env.home, env.sync[7], args=["--advertise-version", "3.2.4"]),
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(go), *SYNC_CMD],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        for _ in range(10)
    ]
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def thread_worker() -> None:
        try:
            for _ in range(6000):
                if go.exists():
                    break
                threading.Event().wait(0.005)
            h = ensure_daemon(SYNC_CMD, home=env.home)
            results.append((h.pid, h.port))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=thread_worker) for _ in range(10)]
    try:
        for p in procs:
            assert read_line(p, 60) == b"READY"
        for t in threads:
            t.start()
        go.touch()  # one barrier releases all twenty callers
        for t in threads:
            t.join(timeout=90)
        for p in procs:
            line = json.loads(read_line(p, 90))
            results.append((line["pid"], line["port"]))
            assert p.wait(timeout=30) == 0
    finally:
        for p in procs:
            kill_and_reap(p)
    assert not errors, errors
    assert len(results) == 20
    assert len(set(results)) == 1
    assert not any(d.alive() for d in stale)
    assert [p.pid for p in _daemons(env.home)] == [results[0][0]]
    assert sorted(connect_probe(env.sync, 0.2)) == [results[0][1]]


@pytest.mark.skipif(os.name != "posix", reason="POSIX symlinks")
@pytest.mark.parametrize("name", ["daemon.log", "spawn.lock"])
def test_a_symlink_planted_at_the_log_or_spawn_lock_is_refused_and_its_target_untouched(
    env: Env, tmp_path: Path, name: str
) -> None:
    """Issue 12: the daemon's output was appended through a planted daemon.log symlink (into
    the victim's file). spawn.lock was already refused by MachineFileLock (LCK-25)."""
    from kitty_filelock import UnsafePathError

    root = daemon_root(env.home)
    root.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    (root / name).symlink_to(victim)
    with pytest.raises(UnsafePathError) as info:
        ensure_daemon(SYNC_CMD, home=env.home)
    assert str(root / name) in str(info.value)
    assert "symbolic link" in str(info.value)
    assert "remove that entry" in str(info.value)
    assert victim.read_bytes() == b"precious\n"
    assert (root / name).is_symlink()  # reported, left for the user to remove
    assert _daemons(env.home) == []
    assert read_state(root) is None


LOCKED_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from kitty_orphan_sweep import ensure_daemon
    import kitty_orphan_sweep._ensure as E
    section = E._ensure_locked
    loaded = []

    def watched(*args, **kwargs):
        before = set(sys.modules)
        try:
            return section(*args, **kwargs)
        finally:
            loaded.extend(sorted(set(sys.modules) - before))

    E._ensure_locked = watched
    handle = ensure_daemon(sys.argv[1:])
    print(json.dumps({"reused": handle.reused, "loaded": loaded}))
    """
)


def test_the_locked_section_imports_nothing(env: Env) -> None:
    """Every concurrent caller waits through the spawn lock's section one at a time: a module
    first imported inside it (psutil: ~15 ms in a fresh process) costs K times over."""
    for reused in (False, True):
        done = subprocess.run(
            [sys.executable, "-c", LOCKED_IMPORTS, *SYNC_CMD],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(done.stdout) == {"reused": reused, "loaded": []}
