"""ensure_daemon(): reuse the verified singleton or spawn exactly one (SWP-14..SWP-22).

Everything happens under the family's spawn lock, so K concurrent callers in one scope
serialise: the first spawns and records the daemon, the others find it in the state record,
verify it over health and reuse it. Orphans of the scope are reaped on both paths.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from kitty_daemon_identity import (
    EXIT_PORT_TAKEN,
    DaemonFamily,
    Family,
    HealthPayload,
    StateRecord,
    ensure_scope_key,
    marker_args,
    read_state,
    scope_id,
    write_state,
)
from kitty_filelock import MachineFileLock, frozen_dataclass, make_private_dirs, open_private_append

from . import _constants
from ._client import DaemonClient
from ._errors import DaemonStartError, DaemonUnresponsiveError, NoFreePortError
from ._net import can_bind, port_refuses
from ._proctable import ProcessTable, PsutilProcessTable
from ._recorded import check_recorded, stop_recorded
from ._results import ResetResult
from ._scan import coerce_family, probe_health, scan
from ._sweep import sweep

# psutil is imported inside the functions that use it: see _proctable.


@frozen_dataclass
class DaemonHandle:
    """The family singleton this call reused or spawned, plus what was reaped on the way.

    ``client()`` calls the daemon's own authenticated routes (the scope key as bearer token,
    sent only after the socket table proves the port is still this daemon's).
    """

    pid: int
    port: int
    base_url: str
    reused: bool
    reaped: ResetResult
    state: StateRecord
    root: Path | None = None

    def client(self, *, timeout: float = 10.0) -> DaemonClient:
        if self.root is None:
            raise ValueError("this handle names no daemon root; use ensure_daemon()'s handle")
        return DaemonClient(
            port=self.port,
            pid=self.pid,
            process_started_at=self.state.process_started_at,
            root=self.root,
            timeout=timeout,
        )


class _Recorded(StrEnum):
    REUSE = "reuse"
    INCOMPATIBLE = "incompatible"
    GONE = "gone"


def _judge_recorded(
    state: StateRecord, family: Family, home: Path, expected_version: str, table: ProcessTable
) -> _Recorded:
    check = check_recorded(
        state,
        home=home,
        process_table=table,
        attempts=_constants.RECORDED_HEALTH_ATTEMPTS,
        family=family,
    )
    if check.payload is not None:
        compatible = (
            check.payload.protocol_version == family.protocol_version
            and check.payload.package_version == expected_version
        )
        return _Recorded.REUSE if compatible else _Recorded.INCOMPATIBLE
    if check.owns_port:
        # Alive and holding its port: a second daemon would break the singleton, and a
        # timeout is never kill authority.
        raise DaemonUnresponsiveError(
            state.family, state.pid, state.port, family.app.doctor_command
        )
    # Not holding its port (gone, recycled, released it while draining, or not ours at all):
    # whoever answers there now is not the singleton. A live daemon of ours is left alone: it
    # retires by itself once a new singleton is recorded (DID-22 rule 2).
    return _Recorded.GONE


def _remove_state(root: Path, family: Family) -> None:
    with contextlib.suppress(FileNotFoundError):
        family.state_path(root).unlink()


def _free_port(family: Family, skip: set[int]) -> int:
    rng = family.range()
    for port in rng:
        if port in skip:
            continue
        if port_refuses(port, _constants.FREE_PORT_CONNECT_S) and can_bind(port):
            return port
    raise NoFreePortError(family.name, str(rng), family.range_variable, family.app.doctor_command)


def _rotate(log: Path) -> None:
    try:
        # lstat: the size of the entry itself (a rename moves a planted link, never its target).
        size = log.lstat().st_size
    except FileNotFoundError:
        return
    if size > _constants.LOG_ROTATE_BYTES:
        os.replace(log, log.with_name(log.name + ".1"))


def _tail(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-_constants.LOG_TAIL_LINES :])


def _spawn(
    command: Sequence[str], root: Path, home: Path, port: int, family: Family
) -> tuple[subprocess.Popen[bytes], Path, int]:
    log = family.log_path(root)
    _rotate(log)
    # kitty-filelock's appender: 0600 from creation whatever the umask, never through a symlink
    # and never into a FIFO, hard link or another user's file (UnsafePathError says so).
    fd = open_private_append(log)
    try:
        offset = os.fstat(fd).st_size
        env = dict(os.environ)
        # The spawn contract (kitty_daemon_identity.daemon_launch reads it on the daemon side).
        profile = family.app
        env[profile.port_variable] = str(port)
        if profile.home_env:
            env[profile.home_env] = str(home)
        argv = [*command, *marker_args(root, sys.executable, profile=profile)]
        detach: dict[str, Any]
        if os.name == "nt":  # pragma: no cover - Windows only
            detach = {
                "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                | getattr(subprocess, "DETACHED_PROCESS", 0)
            }
        else:
            # Its own session: a Ctrl-C in the caller's terminal must not reach the daemon.
            detach = {"start_new_session": True}
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, close_fds=True, env=env, **detach
        )
    finally:
        os.close(fd)
    return child, log, offset


def _reap_when_it_exits(child: subprocess.Popen[bytes]) -> None:
    """A detached daemon stays our child until it is waited for. A daemon thread waits, so a
    daemon that later retires or is swept never lingers as a zombie in a long-lived caller, and
    the Popen object stays referenced (no "still running" warning) for as long as it runs."""
    threading.Thread(target=child.wait, name=f"daemon-reap-{child.pid}", daemon=True).start()


def _kill_child(child: subprocess.Popen[bytes]) -> None:
    # Our own fresh child: its identity is the Popen object, and its group is its own session.
    with contextlib.suppress(OSError):
        if os.name == "nt":  # pragma: no cover - Windows only
            child.kill()
        else:
            os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)


def _is_child_or_descendant(pid: int, child: subprocess.Popen[bytes]) -> bool:
    import psutil

    if pid == child.pid:
        return True
    try:
        return pid in {p.pid for p in psutil.Process(child.pid).children(recursive=True)}
    except psutil.Error:
        return False


def _holds_port(table: ProcessTable, pid: int, port: int) -> bool:
    """`pid` itself listens on `port` (our own child: its socket table is always readable)."""
    import psutil

    try:
        return table.pid_listens_on(pid, port)
    except psutil.Error:
        return False


def _wait_healthy(
    child: subprocess.Popen[bytes],
    port: int,
    family: Family,
    scope: str,
    timeout: float,
    table: ProcessTable,
) -> HealthPayload | int:
    """The matching payload once healthy, or the child's exit code if it exited first."""
    deadline = time.monotonic() + timeout
    delay = _constants.SPAWN_POLL_INITIAL_S
    while True:
        code = child.poll()
        if code is not None:
            return code
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        probe = probe_health([port], min(_constants.HEALTH_TIMEOUT_S, remaining))[port]
        payload = probe.payload
        if (
            payload is not None
            and payload.port == port
            and payload.daemon_family == family.name
            and payload.singleton_scope_id == scope
            and _is_child_or_descendant(payload.pid, child)
            # A listener that won the port race can name our child's pid (it is public); only
            # the process that really holds the port proves the answer came from our daemon.
            and _holds_port(table, payload.pid, port)
        ):
            return payload
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(min(delay, remaining))
        delay = min(delay * _constants.SPAWN_POLL_GROWTH, _constants.SPAWN_POLL_MAX_S)


def _validate_command(command: Sequence[str]) -> list[str]:
    if isinstance(command, str | bytes) or not command:
        raise ValueError(
            f"command must be a non-empty argv list such as [sys.executable, '-m', "
            f"'kitty_daemon_identity'], got {command!r}"
        )
    argv = list(command)
    bad = [a for a in argv if not isinstance(a, str) or not a]
    if bad:
        raise ValueError(f"command elements must be non-empty strings, got {bad!r}")
    return argv


def ensure_daemon(
    command: Sequence[str],
    *,
    family: DaemonFamily | Family | str = DaemonFamily.SYNC,
    home: Path | str | None = None,
    expected_version: str | None = None,
    spawn_timeout: float | None = None,
    process_table: ProcessTable | None = None,
) -> DaemonHandle:
    """Return the family singleton of this scope, spawning it if needed (reuse-or-spawn).

    `command` is the daemon argv without markers; the family's app's root/exec markers are
    appended and the chosen port is passed in `<PREFIX>_DAEMON_PORT` (the spawn contract,
    `kitty_daemon_identity.daemon_launch`). `expected_version` defaults to the family's version.
    Safe to call from many threads and processes at once.
    """
    argv = _validate_command(command)
    fam = coerce_family(family)
    fam.range()  # a bad <PREFIX>_*_PORTS fails here, before anything is locked or spawned
    home_path = (Path(home) if home is not None else fam.app.resolve_home()).expanduser()
    home_path = home_path.absolute()
    root = fam.app.daemon_root(home_path)
    expected = expected_version if expected_version is not None else fam.version
    timeout = _constants.SPAWN_TIMEOUT_S if spawn_timeout is None else spawn_timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"spawn_timeout must be a positive number of seconds, got {timeout!r}")
    table = process_table if process_table is not None else PsutilProcessTable()
    # Home and daemon root are private from creation (SPEC §0.3); existing ones are not chmod-ed.
    make_private_dirs(root)
    # The locked section always opens processes: load psutil now, not inside the section that
    # K concurrent callers pass through one at a time (its import is ~15 ms in a fresh process).
    importlib.import_module("psutil")
    lock = MachineFileLock(
        fam.spawn_lock_path(root),
        acquire_timeout=_constants.SPAWN_LOCK_TIMEOUT_S,
        poll_interval=_constants.SPAWN_LOCK_POLL_S,
        label=f"spawn:{fam.name}",
    )
    with lock:
        ensure_scope_key(root)
        return _ensure_locked(argv, fam, home_path, root, expected, float(timeout), table)


def _reap(family: Family, home: Path, expected: str, table: ProcessTable) -> ResetResult:
    records = scan(family, home=home, expected_version=expected, process_table=table)
    return sweep(records, force=False, home=home, family=family, process_table=table)


def _handle(state: StateRecord, root: Path, reused: bool, reaped: ResetResult) -> DaemonHandle:
    s = state
    return DaemonHandle(s.pid, s.port, f"http://127.0.0.1:{s.port}", reused, reaped, s, root)


def _ensure_locked(
    argv: list[str],
    family: Family,
    home: Path,
    root: Path,
    expected: str,
    timeout: float,
    table: ProcessTable,
) -> DaemonHandle:
    scope = scope_id(root)
    state = read_state(root, family)
    if state is not None:
        verdict = _judge_recorded(state, family, home, expected, table)
        if verdict is _Recorded.REUSE:
            return _handle(state, root, True, _reap(family, home, expected, table))
        if verdict is _Recorded.INCOMPATIBLE:
            # A failure here is not fatal: the old daemon keeps its port, the new one takes
            # another and the old one retires as superseded once the new record is written.
            stop_recorded(state, home=home, process_table=table, family=family)
        _remove_state(root, family)
    # Reap first: a stale orphan must free its port before we pick one (SWP-17).
    reaped = _reap(family, home, expected, table)
    tried: set[int] = set()
    for _ in range(1 + _constants.SPAWN_PORT_RETRIES):
        port = _free_port(family, tried)
        tried.add(port)
        child, log, offset = _spawn(argv, root, home, port, family)
        try:
            outcome = _wait_healthy(child, port, family, scope, timeout, table)
        except TimeoutError:
            _kill_child(child)
            raise DaemonStartError(
                f"the {family.name} daemon did not become healthy on port {port} within "
                f"{timeout:g} s",
                child.returncode,
                _tail(log, offset),
            ) from None
        except BaseException:
            _kill_child(child)
            raise
        if isinstance(outcome, int):
            if outcome == EXIT_PORT_TAKEN:
                continue  # somebody took the port between our check and its bind: next one
            raise DaemonStartError(
                f"the {family.name} daemon exited during start on port {port}",
                outcome,
                _tail(log, offset),
            )
        record = StateRecord.from_health(outcome)
        write_state(root, record, family)
        _reap_when_it_exits(child)
        return _handle(record, root, False, reaped)
    raise DaemonStartError(
        f"the {family.name} daemon lost the race for a port {len(tried)} times "
        f"(tried {sorted(tried)})",
        EXIT_PORT_TAKEN,
        "",
    )
