"""Pins for guards that mutation testing showed could be deleted with every other test green.

Each test fails when the guard it names is removed or weakened (issue 10, "Every guard pinned").
Targets are real processes; only the facts a guard reads are steered at the `ProcessTable` seam.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from _orphan_sweep_helpers import (
    CountingListener,
    Env,
    ProcessPool,
    RecordingListener,
    Spawned,
    make_record,
)
from kitty_daemon_identity import (
    SkipReason,
    daemon_root,
    ensure_scope_key,
    marker_args,
    scope_id,
)
from kitty_orphan_sweep import (
    CleanupPath,
    EscalationBudgets,
    FailedEntry,
    FailureReason,
    PsutilProcessTable,
    SweptEntry,
    sweep,
)
from kitty_orphan_sweep import _escalate as _escalate_module
from kitty_orphan_sweep._constants import START_TIME_TOLERANCE_S
from kitty_orphan_sweep._escalate import (
    Target,
    _Gone,
    _guard,
    _guard_owner,
    _port_released,
    _post_shutdown,
    _Refused,
    escalate,
)
from kitty_orphan_sweep._ownership import ListeningSocket
from kitty_orphan_sweep._proctable import ProcessHandle
from test_orphan_sweep_guards import Handle, Table, _denied

QUICK = EscalationBudgets(http_s=0.0, term_s=0.5, kill_s=2.0, port_s=0.2)


class ArgvChangesTable(PsutilProcessTable):
    """The target's argv as the OS would show it after `intact` reads: the marker is gone (the
    PID now runs something else that kept the create time, e.g. an exec)."""

    def __init__(self, intact: int) -> None:
        self.intact = intact
        self.reads = 0
        self.signals: list[str] = []

    def process(self, pid: int) -> ProcessHandle:
        real = psutil.Process(pid)

        def cmdline() -> list[str]:
            self.reads += 1
            argv = real.cmdline()
            if self.reads <= self.intact:
                return argv
            return [a for a in argv if not a.startswith("--kitty-daemon-root=")]

        def recorded(name: str, send: Callable[[], None]) -> Callable[[], None]:
            def signal() -> None:
                self.signals.append(name)
                send()

            return signal

        return Handle(
            real,
            cmdline=cmdline,
            terminate=recorded("terminate", real.terminate),
            kill=recorded("kill", real.kill),
        )


def _marked(pool: ProcessPool, home: Path, *extra: str) -> Spawned:
    return pool.sleeper(*marker_args(daemon_root(home), sys.executable), *extra)


def test_identity_is_rechecked_right_before_sigterm(env: Env, pool: ProcessPool) -> None:
    s = _marked(pool, env.home)
    table = ArgvChangesTable(intact=1)  # the first guard sees the marker, the pre-TERM one not
    record = make_record(s.pid, env.sync[0], psutil.Process(s.pid).create_time())
    result = sweep([record], budgets=QUICK, process_table=table)
    assert [e.failure_reason for e in result.failed] == [FailureReason.IDENTITY_CHANGED]
    assert table.signals == []
    assert s.alive()


def test_identity_is_rechecked_right_before_sigkill(env: Env, pool: ProcessPool) -> None:
    s = _marked(pool, env.home, "--ignore-sigterm")
    table = ArgvChangesTable(intact=2)  # intact through SIGTERM (ignored), gone before SIGKILL
    record = make_record(s.pid, env.sync[0], psutil.Process(s.pid).create_time())
    result = sweep([record], budgets=QUICK, process_table=table)
    assert [e.failure_reason for e in result.failed] == [FailureReason.IDENTITY_CHANGED]
    assert table.signals == ["terminate"]
    assert s.alive()


@pytest.mark.parametrize(
    "reason",
    [
        SkipReason.UNRESPONSIVE,
        SkipReason.OTHER_NAMESPACE,
        SkipReason.PID_PORT_MISMATCH,
        SkipReason.CREATE_TIME_MISMATCH,
    ],
)
def test_forced_reasons_of_our_marker_are_rechecked_and_get_our_key(
    env: Env, pool: ProcessPool, reason: SkipReason
) -> None:
    """Each of these reasons passed DID-12's marker row: the forced sweep re-checks our marker
    before every signal, and sends our key (to a proven socket owner) before any signal."""
    ours = pool.reference(env.home, env.sync[0])
    forced = make_record(
        ours.pid,
        ours.port,
        psutil.Process(ours.pid).create_time(),
        cleanup_class="operator_required",
        skip_reason=reason.value,
    )
    result = sweep([forced], force=True, budgets=replace(QUICK, http_s=2.0))
    assert [e.cleanup_path for e in result.swept] == [CleanupPath.HTTP_SHUTDOWN], result
    assert ours.proc.wait(timeout=10) == 0  # its own orderly exit, not a signal
    # The same reason on a process without our marker: never signalled.
    stranger = pool.sleeper()
    unmarked = replace(
        forced, pid=stranger.pid, process_started_at=psutil.Process(stranger.pid).create_time()
    )
    refused = sweep([unmarked], force=True, budgets=QUICK)
    assert [e.failure_reason for e in refused.failed] == [FailureReason.IDENTITY_CHANGED]
    assert stranger.alive()


@pytest.mark.parametrize("claim", ["our_scope_other_root", "our_root_other_scope"])
def test_pidless_listener_needs_both_our_root_and_our_scope_for_the_key(
    env: Env, pool: ProcessPool, tmp_path: Path, claim: str
) -> None:
    """Only "both differ" was tested: each leg alone must also keep the key home."""
    daemon = pool.reference(env.home, env.sync[0])  # would accept our key: alive = not sent
    root = daemon_root(env.home)
    other_root = daemon_root(tmp_path / "elsewhere")
    record = replace(
        make_record(
            None, daemon.port, None, cleanup_class="operator_required", skip_reason="missing_pid"
        ),
        daemon_root=str(other_root if claim == "our_scope_other_root" else root),
        singleton_scope_id=scope_id(root) if claim == "our_scope_other_root" else "x#y",
    )
    result = sweep([record], force=True, budgets=replace(QUICK, http_s=1.0))
    assert [e.failure_reason for e in result.failed] == [
        FailureReason.NO_PID_AND_HTTP_SHUTDOWN_FAILED
    ]
    assert "does not claim this daemon root and scope" in result.failed[0].detail
    assert daemon.alive()
    # Claiming both (and the OS showing our socket) does get the key: the test can fail.
    both = replace(record, daemon_root=str(root), singleton_scope_id=scope_id(root))
    stopped = sweep([both], force=True, budgets=replace(QUICK, http_s=2.0, port_s=1.0))
    assert [e.cleanup_path for e in stopped.swept] == [CleanupPath.HTTP_SHUTDOWN]


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv for a second uid",
)
def test_a_forged_marker_on_another_users_process_is_never_signalled(env: Env) -> None:
    """As root, /proc shows every argv: a `nobody` process can carry our marker verbatim."""
    marker = marker_args(daemon_root(env.home), sys.executable)
    proc = subprocess.Popen(
        [*AS_NOBODY, "sh", "-c", "sleep 600; :", "forged", *marker],
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        # setpriv's own argv already carries the marker while it still runs as root: wait for
        # the exec into sh under uid 65534, or a loaded machine tests a root process instead.
        while psutil.Process(proc.pid).cmdline()[:1] != ["sh"]:
            assert time.monotonic() < deadline, "setpriv did not start the forged process"
            time.sleep(0.01)
        assert psutil.Process(proc.pid).uids().real == 65534
        record = make_record(proc.pid, env.sync[0], psutil.Process(proc.pid).create_time())
        for force in (False, True):
            result = sweep([record], force=force, budgets=QUICK)
            assert [e.failure_reason for e in result.failed] == [FailureReason.IDENTITY_CHANGED]
            assert "uid 65534" in result.failed[0].detail
            assert proc.poll() is None
    finally:
        # The whole session: sh's `sleep` child would outlive a kill of sh alone.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# -- the escalation's own small decisions, at its seams -------------------------------------------


@pytest.mark.parametrize(("status", "accepted"), [(202, True), (200, False), (403, False)])
def test_only_a_202_counts_as_an_accepted_shutdown(env: Env, status: int, accepted: bool) -> None:
    root = daemon_root(env.home)
    ensure_scope_key(root)
    listener = RecordingListener(env.sync[0], status)
    try:
        assert _post_shutdown(env.sync[0], root, 2.0) is accepted
    finally:
        listener.close()
    assert len(listener.requests) == 1
    assert b"authorization: bearer " in listener.requests[0].lower()


def test_no_scope_key_means_no_request_and_no_acceptance(env: Env) -> None:
    root = daemon_root(env.home)  # never given a key
    listener = RecordingListener(env.sync[0], 202)  # would "accept" anything it is sent
    try:
        assert _post_shutdown(env.sync[0], root, 2.0) is False
    finally:
        listener.close()
    assert listener.requests == []


def _target(root: Path, create_time: float) -> Target:
    return Target(
        port=1,
        pid=os.getpid(),
        create_time=create_time,
        cleanup_class="safe_auto",
        marker_root=str(root),
        key_root=None,
    )


def test_a_process_gone_before_its_guard_is_gone_not_refused(env: Env) -> None:
    def vanished() -> float:
        raise psutil.NoSuchProcess(os.getpid())

    proc = Handle(psutil.Process(os.getpid()), create_time=vanished)
    with pytest.raises(_Gone):
        _guard(proc, _target(daemon_root(env.home), 1000.0), frozenset(), PsutilProcessTable())


def test_the_start_time_tolerance_includes_its_boundary(env: Env) -> None:
    root = daemon_root(env.home)
    root.mkdir(parents=True, mode=0o700, exist_ok=True)
    marked = [*marker_args(root, sys.executable)]
    tolerance = START_TIME_TOLERANCE_S
    for offset, passes in ((tolerance, True), (tolerance + 0.25, False)):
        started = 1000.0 + offset
        proc = Handle(
            psutil.Process(os.getpid()),
            create_time=lambda: started,  # noqa: B023 - used before the next iteration
            cmdline=lambda: marked,
        )
        if passes:
            _guard(proc, _target(root, 1000.0), frozenset(), PsutilProcessTable())
        else:
            with pytest.raises(_Refused) as refused:
                _guard(proc, _target(root, 1000.0), frozenset(), PsutilProcessTable())
            assert refused.value.reason is FailureReason.PID_REUSED


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX uids")
def test_the_owner_checked_is_the_real_uid(env: Env) -> None:
    """A process whose real uid is another user's is not ours, whatever its effective uid."""
    root = daemon_root(env.home)
    root.mkdir(parents=True, mode=0o700, exist_ok=True)
    me = os.getuid()
    other = 65534 if me != 65534 else 0
    ours = Handle(psutil.Process(os.getpid()), uids=lambda: (me, me, me))
    _guard_owner(ours, _target(root, 1000.0))
    setuid_to_us = Handle(psutil.Process(os.getpid()), uids=lambda: (other, me, me))
    with pytest.raises(_Refused, match=f"uid {other}, not as uid {me}"):
        _guard_owner(setuid_to_us, _target(root, 1000.0))


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to give a root away"
)
def test_a_root_operator_checks_against_the_daemon_roots_owner(env: Env) -> None:
    """As root, another user's daemon (its root owned by that user, running as that user) is
    that user's own: the guard expects the root's owner, not the operator's uid."""
    root = daemon_root(env.home)
    root.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chown(root, 65534, 65534)
    theirs = Handle(psutil.Process(os.getpid()), uids=lambda: (65534, 65534, 65534))
    _guard_owner(theirs, _target(root, 1000.0))
    as_root = Handle(psutil.Process(os.getpid()), uids=lambda: (0, 0, 0))
    with pytest.raises(_Refused, match="not as uid 65534"):
        _guard_owner(as_root, _target(root, 1000.0))


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX uids")
def test_an_owner_that_cannot_be_read_is_gone_or_refused(env: Env) -> None:
    root = daemon_root(env.home)
    root.mkdir(parents=True, mode=0o700, exist_ok=True)

    def vanished() -> tuple[int, ...]:
        raise psutil.NoSuchProcess(os.getpid())

    gone = Handle(psutil.Process(os.getpid()), uids=vanished)
    with pytest.raises(_Gone):
        _guard_owner(gone, _target(root, 1000.0))
    hidden = Handle(psutil.Process(os.getpid()), uids=_denied)
    with pytest.raises(_Refused, match="owner unreadable: AccessDenied") as refused:
        _guard_owner(hidden, _target(root, 1000.0))
    assert refused.value.reason is FailureReason.IDENTITY_CHANGED


def test_no_marker_and_no_entry_signature_is_never_signalled_for_that_reason() -> None:
    """The first unmarked check names its own reason: nothing identified this process at scan."""
    me = psutil.Process(os.getpid())
    target = replace(_target(Path("/nonexistent"), me.create_time()), marker_root=None)
    with pytest.raises(_Refused, match="no root marker") as refused:
        _guard(Handle(me), target, frozenset(), PsutilProcessTable())
    assert refused.value.reason is FailureReason.IDENTITY_CHANGED


def test_an_unmarked_target_needs_the_exact_scanned_start_time() -> None:
    """No marker, so no tolerance: half a second off (within the marked tolerance) is refused."""
    me = psutil.Process(os.getpid())
    scanned = me.create_time()
    target = replace(
        _target(Path("/nonexistent"), scanned),
        marker_root=None,
        entry_signatures=("kitty_daemon_identity",),
    )
    later = Handle(me, create_time=lambda: scanned + 0.5)
    with pytest.raises(_Refused, match="not at the scanned") as refused:
        _guard(later, target, frozenset(), PsutilProcessTable())
    assert refused.value.reason is FailureReason.IDENTITY_CHANGED


def test_an_unmarked_target_gone_before_its_argv_is_read_is_gone_not_refused() -> None:
    """The process exits between the start-time check and reading its argv: that is `gone`
    (nothing to stop), not an identity change."""
    me = psutil.Process(os.getpid())
    target = replace(
        _target(Path("/nonexistent"), me.create_time()),
        marker_root=None,
        entry_signatures=("kitty-daemon",),
    )

    def vanished() -> list[str]:
        raise psutil.NoSuchProcess(os.getpid())

    with pytest.raises(_Gone):
        _guard(Handle(me, cmdline=vanished), target, frozenset(), PsutilProcessTable())


class SocketsTable(PsutilProcessTable):
    """The port's LISTEN sockets as the OS would show them (None: the OS cannot tell)."""

    def __init__(self, sockets: list[ListeningSocket] | None) -> None:
        self.sockets = sockets

    def listening_sockets(self, port: int, pid: int | None) -> list[ListeningSocket] | None:
        return self.sockets


@pytest.mark.parametrize(
    "sockets",
    [None, [], [ListeningSocket(uid=0, held=False)]],
    ids=["unknown", "no_socket", "someone_elses_socket"],
)
def test_an_unmarked_target_must_still_hold_its_port(sockets: list[ListeningSocket] | None) -> None:
    me = psutil.Process(os.getpid())
    target = replace(
        _target(Path("/nonexistent"), me.create_time()),
        marker_root=None,
        entry_signatures=("kitty-daemon",),
    )
    shaped = Handle(me, cmdline=lambda: ["/usr/bin/kitty-daemon", "--port", "1"])
    with pytest.raises(_Refused, match="no longer holds port 1") as refused:
        _guard(shaped, target, frozenset(), SocketsTable(sockets))
    assert refused.value.reason is FailureReason.IDENTITY_CHANGED
    # Holding it, the same process passes every unmarked check: the test can fail.
    _guard(shaped, target, frozenset(), SocketsTable([ListeningSocket(uid=0, held=True)]))


def test_a_pid_psutil_calls_another_process_gets_no_further_signal(
    env: Env, pool: ProcessPool
) -> None:
    """SIGTERM reports NoSuchProcess (psutil saw the pid's create time change: the pid is
    someone else's now): the escalation stops there - no SIGKILL to whoever has the pid."""
    s = _marked(pool, env.home)
    kills: list[int] = []

    def reused() -> None:
        raise psutil.NoSuchProcess(s.pid)

    table = Table(terminate=reused, kill=lambda: kills.append(s.pid))
    record = make_record(s.pid, env.sync[0], psutil.Process(s.pid).create_time())
    result = sweep([record], budgets=replace(QUICK, term_s=1.0), process_table=table)
    assert kills == []
    assert s.alive()
    assert [e.cleanup_path for e in result.swept] == [CleanupPath.TERMINATE]


class BlindTable(PsutilProcessTable):
    def listening_pids(
        self, ports: Collection[int] | None = None, hint_pids: Collection[int] = ()
    ) -> dict[int, set[int | None]]:
        raise psutil.AccessDenied()


def test_a_still_listening_port_is_released_only_when_provably_someone_elses(env: Env) -> None:
    """After the target is gone its port still listens: released only if the OS shows the
    listener is another process; with no pid to compare, or an unreadable table, it is not."""
    listener = CountingListener(env.sync[0])
    try:
        port = env.sync[0]
        assert _port_released(port, None, PsutilProcessTable(), 0.0) is False
        assert _port_released(port, os.getpid() + 1, BlindTable(), 0.0) is False
        assert _port_released(port, os.getpid(), PsutilProcessTable(), 0.0) is False
        # Another pid than the listener's (ours): the port now belongs to someone else.
        assert _port_released(port, os.getpid() + 1, PsutilProcessTable(), 0.0) is True
    finally:
        listener.close()


def test_a_swept_entrys_duration_is_in_milliseconds_to_the_microsecond(
    env: Env, pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The escalation's clock read through a seam: 0.2501234 s between start and end."""
    gone = pool.sleeper()
    gone.proc.kill()
    gone.proc.wait(timeout=10)
    reads = iter([100.0])
    clock = types.SimpleNamespace(monotonic=lambda: next(reads, 100.2501234), sleep=time.sleep)
    monkeypatch.setattr(_escalate_module, "time", clock)
    target = replace(_target(daemon_root(env.home), 1000.0), pid=gone.pid, port=env.sync[0])
    entry = escalate(target, QUICK, PsutilProcessTable(), frozenset())
    assert isinstance(entry, SweptEntry)
    assert entry.cleanup_path is CleanupPath.ALREADY_GONE
    assert entry.duration_ms == 250.123


class UnopenableTable(PsutilProcessTable):
    def process(self, pid: int) -> ProcessHandle:
        raise psutil.AccessDenied(pid)


def test_a_process_that_cannot_be_opened_is_refused_as_unprovable(env: Env) -> None:
    target = replace(_target(daemon_root(env.home), 1000.0), port=env.sync[0])
    entry = escalate(target, QUICK, UnopenableTable(), frozenset())
    assert isinstance(entry, FailedEntry)
    assert entry.failure_reason is FailureReason.PID_REUSED
    assert "cannot open the process" in entry.detail


class WaitRecordingTable(PsutilProcessTable):
    """Records each wait_gone timeout; the target "exits" at the first wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def wait_gone(self, proc: ProcessHandle, timeout: float) -> bool:
        self.waits.append(timeout)
        return True


def test_an_http_stage_that_used_its_budget_waits_no_longer(
    env: Env, pool: ProcessPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One budget covers the shutdown request and the wait for the exit it triggers: when the
    request used all of it, the wait for the exit gets nothing more (max(0, ...)), and never
    a negative timeout."""
    s = _marked(pool, env.home)
    root = daemon_root(env.home)
    calls = iter([0.0, 0.0])  # started, the stage's start; every later read: 100 s on
    clock = types.SimpleNamespace(monotonic=lambda: next(calls, 100.0), sleep=time.sleep)
    monkeypatch.setattr(_escalate_module, "time", clock)
    monkeypatch.setattr(_escalate_module, "_key_goes_to", lambda proc, target, table: root)
    monkeypatch.setattr(_escalate_module, "_post_shutdown", lambda port, key_root, t: True)
    table = WaitRecordingTable()
    target = replace(
        _target(root, psutil.Process(s.pid).create_time()), pid=s.pid, port=env.sync[0]
    )
    entry = escalate(target, replace(QUICK, http_s=1.0), table, frozenset())
    assert table.waits == [0.0]
    assert isinstance(entry, SweptEntry)
    assert entry.cleanup_path is CleanupPath.HTTP_SHUTDOWN
