"""scan(): observe every listener of a family's range and classify it (SWP-01..SWP-06).

Order matters for speed and safety: connect probes first (all ports at once), health only on
open ports, PID lookups only for open/suspect ports, then the pure classifier. Nothing here
sends a signal; a scan is read-only apart from connecting to loopback ports of its own range.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Final

from kitty_daemon_identity import (
    ArgvError,
    ConnectState,
    DaemonFamily,
    DaemonIdentityRecord,
    Family,
    Foreground,
    HealthOutcome,
    HealthProbe,
    ListenerObservation,
    OtherRoot,
    PidError,
    as_family,
    classify,
    load_other_root,
    parse_health,
    parse_markers,
    read_state,
    scope_id,
)
from kitty_filelock import frozen_dataclass

from . import _constants
from ._net import HttpOutcome, HttpRequest, HttpResult, connect_probe, http_exchange_many
from ._proctable import ProcessTable, PsutilProcessTable
from ._sockdiag import listening_ports

# psutil is imported inside the functions that use it: see _proctable.

#: Root-marker values seen by scans in this process, keyed by (port, pid, start time). sweep()
#: uses them to re-check that a forced cross-root target still carries the marker it was
#: scanned with, and to find that root's scope key. Bounded: oldest entries are dropped.
_SCANNED_MARKERS: dict[tuple[int, int, float], str] = {}
_SCANNED_MARKERS_LOCK: Final = threading.Lock()
_SCANNED_MARKERS_MAX: Final = 4096


def scanned_marker_root(port: int, pid: int | None, started: float | None) -> str | None:
    """The root marker a scan in this process saw for that listener, if any."""
    if pid is None or started is None:
        return None
    with _SCANNED_MARKERS_LOCK:
        return _SCANNED_MARKERS.get((port, pid, started))


def _remember_marker(port: int, pid: int, started: float, root: str) -> None:
    with _SCANNED_MARKERS_LOCK:
        _SCANNED_MARKERS[(port, pid, started)] = root
        while len(_SCANNED_MARKERS) > _SCANNED_MARKERS_MAX:
            del _SCANNED_MARKERS[next(iter(_SCANNED_MARKERS))]


def coerce_family(family: DaemonFamily | Family | str) -> Family:
    """The bound family: an app's ``Family``, or one of kitty's by name (else ``ValueError``)."""
    return as_family(family)


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


@frozen_dataclass
class _PidLookup:
    pid: int | None
    error: PidError | None
    source: str | None


def health_request(port: int) -> HttpRequest:
    return HttpRequest(port, "GET", "/api/health", {"Accept": "application/json"})


def to_probe(result: HttpResult) -> HealthProbe:
    """Map a transport result to the classifier's HealthProbe (payload parsed, never trusted)."""
    if result.outcome is HttpOutcome.RESPONSE and result.status is not None:
        body = result.body if result.body is not None else b""
        return HealthProbe.from_response(
            result.status, parse_health(body), elapsed_ms=result.elapsed_ms
        )
    outcome = {
        HttpOutcome.TIMEOUT: HealthOutcome.TIMEOUT,
        HttpOutcome.REFUSED: HealthOutcome.REFUSED,
    }.get(result.outcome, HealthOutcome.NON_HTTP)
    return HealthProbe(outcome, error=result.error, elapsed_ms=result.elapsed_ms)


def probe_health(ports: Iterable[int], timeout: float) -> dict[int, HealthProbe]:
    """Concurrent `GET /api/health` on loopback (no proxy can ever be involved)."""
    results = http_exchange_many([health_request(p) for p in ports], timeout)
    return {port: to_probe(result) for port, result in results.items()}


def _claimed_pid(port: int, probe: HealthProbe) -> int | None:
    payload = probe.payload
    if probe.outcome is HealthOutcome.OK and payload is not None and payload.port == port:
        return payload.pid
    return None


def _fallback(port: int, claimed: int | None, table: ProcessTable) -> _PidLookup:
    """macOS without privileges: the health-claimed PID's own sockets, then lsof (SWP-04)."""
    import psutil

    if claimed is not None:
        try:
            if table.pid_listens_on(claimed, port):
                return _PidLookup(claimed, None, "claimed")
        except psutil.Error:
            pass
    pids = table.lsof_pids(port, _constants.LSOF_TIMEOUT_S)
    if pids is not None and len(set(pids)) == 1:
        return _PidLookup(pids[0], None, "lsof")
    if pids is not None:
        return _PidLookup(None, PidError.LOOKUP_FAILED, "lsof")
    return _PidLookup(None, PidError.ACCESS_DENIED, None)


def resolve_pids(
    ports: Iterable[int], claimed: Mapping[int, int | None], table: ProcessTable
) -> dict[int, _PidLookup]:
    """Listener PID per port: one system-wide socket-table call, fallbacks only where needed."""
    ports = list(ports)
    if not ports:
        return {}
    import psutil

    try:
        hints = {pid for pid in claimed.values() if pid is not None}
        listening: dict[int, set[int | None]] | None = table.listening_pids(ports, hints)
        global_error: PidError | None = None
    except psutil.AccessDenied:
        listening, global_error = None, PidError.ACCESS_DENIED
    except (psutil.Error, OSError):
        listening, global_error = None, PidError.LOOKUP_FAILED
    out: dict[int, _PidLookup] = {}
    need_fallback: list[int] = []
    for port in ports:
        if listening is None:
            if global_error is PidError.ACCESS_DENIED:
                need_fallback.append(port)
            else:
                out[port] = _PidLookup(None, global_error, None)
            continue
        owners = listening.get(port)
        if owners is None:
            # Not in the table: the listener went away, or listens only on another address.
            out[port] = _PidLookup(None, PidError.NOT_FOUND, None)
            continue
        known = {p for p in owners if p is not None}
        if len(known) == 1:
            out[port] = _PidLookup(known.pop(), None, "net_connections")
        elif len(known) > 1:
            # A socket shared by several processes (fork): only the self-reported one is named.
            mine = claimed.get(port)
            if mine in known:
                out[port] = _PidLookup(mine, None, "net_connections")
            else:
                out[port] = _PidLookup(None, PidError.LOOKUP_FAILED, "net_connections")
        else:
            # The OS hides the owner (another user's process): try the claimed PID only.
            mine = claimed.get(port)
            out[port] = _PidLookup(None, PidError.ACCESS_DENIED, None)
            if mine is not None:
                try:
                    if table.pid_listens_on(mine, port):
                        out[port] = _PidLookup(mine, None, "claimed")
                except psutil.Error:
                    pass
    if need_fallback:
        # Imported here: the fallback is rare, and concurrent.futures (with logging) costs ~3 ms
        # of every short command's start.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(8, len(need_fallback))) as pool:
            found = pool.map(lambda p: _fallback(p, claimed.get(p), table), need_fallback)
            out.update(zip(need_fallback, found, strict=True))
    return out


@frozen_dataclass
class _ProcFacts:
    argv: tuple[str, ...] | None
    argv_error: ArgvError | None
    create_time: float | None
    exe: str | None
    uid: int | None = None


@frozen_dataclass
class ListenerProcess:
    """What the OS showed about the process behind one scanned listener, for an operator who
    must decide about it (kitty-doctor's review lines). Evidence only, never kill authority: the
    escalation re-reads every fact it acts on. Unknown values are None.
    """

    #: None when the OS hides which process listens (another user's, without privileges).
    pid: int | None
    #: Real uid of the process, else the uid the kernel records for the listening socket (None
    #: where the OS says neither, e.g. Windows).
    uid: int | None
    #: OS create time (epoch seconds).
    create_time: float | None
    argv: tuple[str, ...] | None
    #: The daemon root its root marker names (None: no marker, or conflicting markers).
    root: str | None
    #: Whether that root directory exists now (None when there is no root to look at).
    root_exists: bool | None


@frozen_dataclass
class ScannedListener:
    """One scan result: the classified record and the process facts behind it (None when the
    OS told nothing about the listener's process, not even the uid its socket belongs to)."""

    record: DaemonIdentityRecord
    process: ListenerProcess | None


def process_facts(pid: int, table: ProcessTable) -> _ProcFacts:
    """argv, create time and exe of one PID; every OS error becomes an `argv_error`, not a fact."""
    import psutil

    try:
        proc = table.process(pid)
    except psutil.AccessDenied:
        return _ProcFacts(None, ArgvError.ACCESS_DENIED, None, None)
    except psutil.Error:
        return _ProcFacts(None, ArgvError.GONE, None, None)
    try:
        created: float | None = proc.create_time()
    except psutil.Error:
        created = None
    try:
        exe: str | None = proc.exe() or None
    except psutil.Error:
        exe = None
    try:
        uid: int | None = proc.uids()[0]
    except (psutil.Error, AttributeError):  # AttributeError: no uids on Windows
        uid = None
    argv: tuple[str, ...] | None = None
    argv_error: ArgvError | None = None
    try:
        argv = tuple(proc.cmdline())
    except psutil.ZombieProcess:
        argv_error = ArgvError.ZOMBIE
    except psutil.NoSuchProcess:
        argv_error = ArgvError.GONE
    except psutil.Error:
        argv_error = ArgvError.ACCESS_DENIED
    if argv is not None and not argv:
        # Linux shows an empty cmdline for zombies and kernel threads: unreadable, not "no markers".
        try:
            zombie = proc.status() == psutil.STATUS_ZOMBIE
        except psutil.Error:
            zombie = False
        argv, argv_error = None, (ArgvError.ZOMBIE if zombie else ArgvError.GONE)
    return _ProcFacts(argv, argv_error, created, exe, uid)


def _named_root(
    argv: tuple[str, ...] | None,
    fg: Foreground,
    family: Family,
    cache: dict[str, OtherRoot],
) -> OtherRoot | None:
    """The other daemon root a listener's marker names (exists? its state record), for DID-12:
    another home's live singleton is `other_home_singleton`, a deleted home's daemon is
    `root_missing`. None when the marker is ours, absent or conflicting."""
    if argv is None:
        return None
    markers = parse_markers(argv, profile=family.app)
    named = markers.root
    if markers.conflict or not named or named == str(fg.daemon_root):
        return None
    if named not in cache:
        cache[named] = load_other_root(named, family)
    return cache[named]


def foreground(
    family: Family,
    home: Path | None,
    *,
    expected_version: str | None = None,
    extra_entry_signatures: Iterable[str] = (),
) -> Foreground:
    """The caller's own view (SWP-06): resolved root, scope id, interpreter, version, singleton."""
    root = family.app.daemon_root(home)
    own = family.entry_signatures
    extra = tuple(s for s in extra_entry_signatures if s and s not in own)
    return Foreground(
        family=family,
        range=family.range(),
        daemon_root=root,
        scope_id=scope_id(root),
        # Resolved, like the exec marker the spawner writes: a venv's python is a symlink, and an
        # unresolved path would put `exec_mismatch` evidence on every daemon we started ourselves.
        executable=str(Path(sys.executable).resolve()),
        package_version=expected_version if expected_version is not None else family.version,
        protocol_version=family.protocol_version,
        singleton=read_state(root, family),
        entry_signatures=(*own, *extra),
    )


def scan(
    family: DaemonFamily | Family | str,
    *,
    home: Path | str | None = None,
    ports: Iterable[int] | None = None,
    connect_timeout: float | None = None,
    health_timeout: float | None = None,
    extra_entry_signatures: Iterable[str] = (),
    expected_version: str | None = None,
    process_table: ProcessTable | None = None,
) -> list[DaemonIdentityRecord]:
    """Classify every open or suspect listener of the family's range, sorted by port.

    Free (refused) ports are absent; every other port yields exactly one record, `never_touch`
    ones included. `ports` narrows the scan and must lie inside `family_range(family)`.
    """
    return [
        scanned.record
        for scanned in scan_listeners(
            family,
            home=home,
            ports=ports,
            connect_timeout=connect_timeout,
            health_timeout=health_timeout,
            extra_entry_signatures=extra_entry_signatures,
            expected_version=expected_version,
            process_table=process_table,
        )
    ]


def _socket_uid(table: ProcessTable, port: int) -> int | None:
    """The one uid the kernel records for the port's listening sockets (None: unknown or
    several): even a process the OS hides from us shows whose it is this way."""
    import psutil

    try:
        sockets = table.listening_sockets(port, None)
    except (psutil.Error, OSError):
        return None
    uids = {s.uid for s in sockets or ()}
    return uids.pop() if len(uids) == 1 else None


def _listener_process(
    pid: int | None,
    fact: _ProcFacts,
    fg: Foreground,
    other: OtherRoot | None,
    socket_uid: Callable[[], int | None],
) -> ListenerProcess | None:
    if pid is None:
        uid = socket_uid()
        return None if uid is None else ListenerProcess(None, uid, None, None, None, None)
    profile = as_family(fg.family).app
    markers = parse_markers(fact.argv, profile=profile) if fact.argv is not None else None
    root = markers.root if markers is not None and not markers.conflict else None
    exists: bool | None = None
    if root:
        # The classifier already looked at another root (load_other_root); our own is stat-ed.
        exists = other.exists if other is not None else Path(root).is_dir()
    return ListenerProcess(pid, fact.uid, fact.create_time, fact.argv, root or None, exists)


def scan_listeners(
    family: DaemonFamily | Family | str,
    *,
    home: Path | str | None = None,
    ports: Iterable[int] | None = None,
    connect_timeout: float | None = None,
    health_timeout: float | None = None,
    extra_entry_signatures: Iterable[str] = (),
    expected_version: str | None = None,
    process_table: ProcessTable | None = None,
) -> list[ScannedListener]:
    """`scan`, with the process facts behind each record (owner uid, create time, argv, the
    root its marker names and whether that root still exists) for an operator's review."""
    fam = coerce_family(family)
    rng = fam.range()
    if ports is None:
        wanted = list(rng)
    else:
        wanted = sorted(set(ports))
        outside = [p for p in wanted if p not in rng]
        if outside:
            raise ValueError(
                f"ports {outside[:5]} are outside the {fam.name} range {rng}; a family scan only "
                f"connects inside its own range (change {fam.range_variable} to move it)"
            )
    c_timeout = _positive(
        "connect_timeout",
        _constants.CONNECT_TIMEOUT_S if connect_timeout is None else connect_timeout,
    )
    h_timeout = _positive(
        "health_timeout", _constants.HEALTH_TIMEOUT_S if health_timeout is None else health_timeout
    )
    table = process_table if process_table is not None else PsutilProcessTable()
    # Only the ports the kernel lists a LISTEN socket on need a connect: one netlink dump
    # (~0.1 ms) instead of a socket per port of the range (~25 us each). A port it does not list
    # would refuse the connect anyway; where it cannot answer, every port is tried.
    listening = listening_ports()
    if listening is not None:
        wanted = [p for p in wanted if p in listening]
    states = connect_probe(wanted, c_timeout)
    if not states:
        return []  # before the caller's own view: its scope id hashes, which nothing here needs
    fg = foreground(
        fam,
        Path(home) if home is not None else None,
        expected_version=expected_version,
        extra_entry_signatures=extra_entry_signatures,
    )
    open_ports = [p for p, s in states.items() if s is ConnectState.OPEN]
    health = probe_health(open_ports, h_timeout)
    for port, state in states.items():
        if state is ConnectState.SUSPECT:
            # Never an HTTP attempt on a hung listener: it would only burn the health budget.
            health[port] = HealthProbe(HealthOutcome.TIMEOUT, error="connect_suspect")
    claimed = {port: _claimed_pid(port, probe) for port, probe in health.items()}
    pids = resolve_pids(sorted(states), claimed, table)
    facts: dict[int, _ProcFacts] = {}
    others: dict[str, OtherRoot] = {}
    records: list[ScannedListener] = []
    for port in sorted(states):
        lookup = pids[port]
        fact = _ProcFacts(None, None, None, None)
        if lookup.pid is not None:
            fact = facts.get(lookup.pid) or process_facts(lookup.pid, table)
            facts[lookup.pid] = fact
        other = _named_root(fact.argv, fg, fam, others)
        obs = ListenerObservation(
            family=fam,
            port=port,
            connect=states[port],
            pid=lookup.pid,
            pid_error=lookup.error,
            argv=fact.argv,
            argv_error=fact.argv_error,
            create_time=fact.create_time,
            exe=fact.exe,
            health=health[port],
            pid_source=lookup.source,
            other_root=other,
        )
        record = classify(obs, fg)
        if (
            lookup.pid is not None
            and fact.argv is not None
            and record.process_started_at is not None
        ):
            markers = parse_markers(fact.argv, profile=fam.app)
            if markers.root_present and not markers.conflict and markers.root:
                _remember_marker(port, lookup.pid, record.process_started_at, markers.root)
        process = _listener_process(
            lookup.pid, fact, fg, other, functools.partial(_socket_uid, table, port)
        )
        records.append(ScannedListener(record, process))
    return records
