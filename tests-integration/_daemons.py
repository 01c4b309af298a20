"""The daemon/doctor matrices' world (INT-01/02/03/06/08, the demo), on top of `_harness.py`:

* `open_lab()` / `Lab`: one test's KITTY_HOME, private port sub-ranges (pre-flighted: a foreign
  process in them fails fast, named) and the processes it started, all reaped on the way out
  (a listener left in its ports fails the test).
* `start_daemon`, `start_counter`, `start_sleeper`, `start_busy_daemon`, `start_lock_holder`:
  real processes (the reference daemon, or a `_child.py daemon` helper, see
  `_daemon_workers.py`) that announce readiness with one line; `write_state_for` records one as
  its family's singleton; `run_doctor` runs `kitty-doctor` as a real subprocess.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from _harness import (
    Procs,
    Ranges,
    Running,
    child_argv,
    child_env,
    describe_pid,
    listening_pids,
    preflight_message,
)

#: Default-range boundary ports (INT-03): first, last, just below, just above.
SYNC_DEFAULT: Final = range(9400, 9450)
DASHBOARD_DEFAULT: Final = range(9237, 9337)


def daemon_argv(
    home: Path | None,
    *,
    family: str = "sync",
    port: int | None = None,
    version: str | None = None,
    wedge: str | None = None,
    tick: float | None = None,
    busy: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """Reference-daemon argv; `home` None means no markers at all (a pre-marker daemon)."""
    from kitty_daemon_identity import daemon_root, marker_args

    argv = [sys.executable, "-m", "kitty_daemon_identity", "--family", family]
    if port is not None:
        argv += ["--port", str(port)]
    if version is not None:
        argv += ["--advertise-version", version]
    if wedge is not None:
        argv += ["--wedge", wedge]
    if tick is not None:
        argv += ["--tick", str(tick)]
    if busy:
        argv.append("--busy")
    argv += list(extra)
    if home is not None:
        argv += marker_args(daemon_root(home), sys.executable)
    return argv


def start_daemon(
    procs: Procs,
    home: Path,
    *,
    family: str = "sync",
    port: int,
    version: str | None = None,
    wedge: str | None = None,
    markers: bool = True,
    tick: float | None = None,
    busy: bool = False,
    extra: Sequence[str] = (),
    name: str | None = None,
) -> Running:
    """A reference daemon of `home`'s scope on `port` (markers appended like ensure_daemon)."""
    argv = daemon_argv(
        home if markers else None,
        family=family,
        port=port,
        version=version,
        wedge=wedge,
        tick=tick,
        busy=busy,
        extra=extra,
    )
    label = name or f"daemon-{family}-{port}-{version or 'cur'}{'-' + wedge if wedge else ''}"
    return procs.launch(argv, name=label, env={"KITTY_HOME": str(home)})


def start_counter(
    procs: Procs, port: int, *, kitty_home: Path | None = None, family: str = "sync"
) -> Running:
    """A counting listener; kitty-looking (same scope as `kitty_home`) or third-party."""
    argv = child_argv("daemon", "count", "--port", str(port))
    env: dict[str, str] = {}
    if kitty_home is not None:
        from kitty_daemon_identity import daemon_root, marker_args

        argv += ["--kitty", family, *marker_args(daemon_root(kitty_home), sys.executable)]
        env["KITTY_HOME"] = str(kitty_home)
    kind = f"kitty-{family}" if kitty_home is not None else "third-party"
    return procs.launch(argv, name=f"counter-{kind}-{port}", env=env, events=True, deaf=True)


def start_sleeper(procs: Procs) -> Running:
    return procs.launch(child_argv("daemon", "sleeper"), name="sleeper", events=True, deaf=True)


def start_busy_daemon(
    procs: Procs, home: Path, *, port: int, busy_file: Path, ticks_file: Path, tick: float
) -> Running:
    from kitty_daemon_identity import daemon_root, marker_args

    argv = child_argv(
        "daemon",
        "busy-daemon",
        "--port",
        str(port),
        "--busy-file",
        str(busy_file),
        "--ticks-file",
        str(ticks_file),
        "--tick",
        str(tick),
        *marker_args(daemon_root(home), sys.executable),
    )
    return procs.launch(argv, name=f"busy-daemon-{port}", env={"KITTY_HOME": str(home)})


def write_state_for(
    home: Path, running: Running, *, family: str = "sync", package_version: str | None = None
) -> Any:
    """Record `running` (a reference daemon) as its family's singleton, like ensure_daemon does."""
    from kitty_daemon_identity import (
        DAEMON_PROTOCOL_VERSION,
        DaemonFamily,
        StateRecord,
        __version__,
        daemon_root,
        process_start_time,
        scope_id,
        write_state,
    )

    root = daemon_root(home)
    started = process_start_time(running.pid)
    assert started is not None, f"cannot read the start time of pid {running.pid}"
    assert running.port is not None
    record = StateRecord(
        family=DaemonFamily(family),
        pid=running.pid,
        port=running.port,
        process_started_at=started,
        package_version=package_version or __version__,
        protocol_version=DAEMON_PROTOCOL_VERSION,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        instance_id=uuid.uuid4().hex,
        scope_id=scope_id(root),
    )
    write_state(root, record)
    return record


def run_doctor(
    *args: str, home: Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`kitty-doctor` as a real subprocess (stdin not a TTY, so it never prompts)."""
    full_env = child_env({"KITTY_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"})
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kitty_doctor", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )


@dataclass
class Lab:
    """One test's world: its KITTY_HOME, its port sub-ranges and the processes it started."""

    home: Path
    ranges: Ranges
    procs: Procs
    workdir: Path

    @property
    def root(self) -> Path:
        from kitty_daemon_identity import daemon_root

        return daemon_root(self.home)

    def other_home(self, name: str) -> Path:
        """A second temp home (cross-home daemons); under workdir so teardown reaps its daemons."""
        home = self.workdir / name
        home.mkdir(mode=0o700, exist_ok=True)
        return home


@contextlib.contextmanager
def open_lab(
    workdir: Path,
    home: Path,
    ranges: Ranges | None,
    env: Any,
    *,
    preflight: Iterable[int] | None = None,
) -> Iterator[Lab]:
    """Point the environment (`env` is pytest's monkeypatch) at `home` and `ranges` (None: the
    default ranges, overrides removed), fail fast if a foreign process holds one of the ports
    (`preflight`, default every port of `ranges`), and reap everything on the way out."""
    ports = list(preflight) if preflight is not None else (ranges.all_ports() if ranges else [])
    message = preflight_message(ports, "pre-flight")
    if message is not None:
        raise PortsBusy(message)
    env.setenv("KITTY_HOME", str(home))
    if ranges is None:
        env.delenv("KITTY_SYNC_PORTS", raising=False)
        env.delenv("KITTY_DASHBOARD_PORTS", raising=False)
        ranges = Ranges(SYNC_DEFAULT, DASHBOARD_DEFAULT)
    else:
        for key, value in ranges.env().items():
            env.setenv(key, value)
    procs = Procs(workdir)
    try:
        yield Lab(home, ranges, procs, workdir)
    finally:
        procs.close()
        # Everything this test started is gone; a listener still in its ports is a leak.
        left = listening_pids([*ranges.sync, *ranges.dashboard, *ports])
        if left:
            raise AssertionError(
                "listeners left behind: "
                + ", ".join(f"port {p}: {describe_pid(pid)}" for p, pid in sorted(left.items()))
            )


class PortsBusy(AssertionError):
    """A port a test must own is held by a process the test did not start."""


def start_lock_holder(procs: Procs, lock_path: Path) -> Running:
    lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return procs.launch(
        child_argv("daemon", "hold-lock", "--path", str(lock_path)), name="lock-holder"
    )
