"""The pure, total cleanup classifier (DID-12..DID-15).

``classify`` turns OS and network facts (gathered elsewhere, e.g. by kitty-orphan-sweep) into a
``DaemonIdentityRecord`` with a cleanup class. It never raises, never does I/O and never guesses:
an unknown fact is null in the record and can only make a candidate *less* eligible for
automatic cleanup.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from kitty_filelock import frozen_dataclass, frozen_field, frozen_field_names

from ._constants import DEFAULT_ENTRY_SIGNATURES, START_TIME_TOLERANCE_S
from ._family import DaemonFamily, PortRange
from ._health import HealthParseError, HealthPayload
from ._markers import Markers, parse_markers, spawn_shaped
from ._profile import KITTY, AppProfile, Family
from ._state import OtherRoot, StateRecord

__all__ = [
    "ArgvError",
    "CleanupClass",
    "ConnectState",
    "DaemonIdentityRecord",
    "Foreground",
    "HealthOutcome",
    "HealthProbe",
    "IdentitySource",
    "ListenerObservation",
    "PidError",
    "SkipReason",
    "classify",
]


class CleanupClass(StrEnum):
    SAFE_AUTO = "safe_auto"
    OPERATOR_REQUIRED = "operator_required"
    NEVER_TOUCH = "never_touch"


class SkipReason(StrEnum):
    """Why a candidate is not ``safe_auto``: the 13 reasons of DID-12 plus
    ``other_home_singleton`` (issue 10: the live singleton of another daemon root)."""

    OUT_OF_RANGE = "out_of_range"
    OTHER_FAMILY = "other_family"
    THIRD_PARTY = "third_party"
    NOT_KITTY = "not_kitty"
    IS_RECORDED_SINGLETON = "is_recorded_singleton"
    MISSING_PID = "missing_pid"
    ARGV_UNREADABLE = "argv_unreadable"
    PRE_MARKER = "pre_marker"
    CROSS_ROOT = "cross_root"
    UNRESPONSIVE = "unresponsive"
    OTHER_NAMESPACE = "other_namespace"
    OTHER_HOME_SINGLETON = "other_home_singleton"
    PID_PORT_MISMATCH = "pid_port_mismatch"
    CREATE_TIME_MISMATCH = "create_time_mismatch"


class IdentitySource(StrEnum):
    HEALTH_SELF_REPORT = "health_self_report"
    CMDLINE_MARKER = "cmdline_marker"
    STATE_RECORD = "state_record"
    NONE = "none"


class ConnectState(StrEnum):
    OPEN = "open"  # connect succeeded
    SUSPECT = "suspect"  # connect timed out / EAGAIN: a hung listener, never "free"


class PidError(StrEnum):
    NOT_FOUND = "not_found"
    ACCESS_DENIED = "access_denied"
    LOOKUP_FAILED = "lookup_failed"


class ArgvError(StrEnum):
    ACCESS_DENIED = "access_denied"
    GONE = "gone"
    ZOMBIE = "zombie"


class HealthOutcome(StrEnum):
    OK = "ok"
    INVALID = "invalid"
    NON_HTTP = "non_http"
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    REFUSED = "refused"


@frozen_dataclass
class HealthProbe:
    """Result of ``GET /api/health`` against one listener.

    ``http_status`` is set whenever any HTTP response arrived. ``looks_kitty`` is True for an ok
    outcome or an invalid payload that still has ``daemon_family`` and ``protocol_version``;
    ``claimed_family`` is the raw family such a payload claimed (for DID-12 row 2).
    """

    outcome: HealthOutcome
    http_status: int | None = None
    payload: HealthPayload | None = None
    looks_kitty: bool = False
    error: str | None = None
    elapsed_ms: float | None = None
    claimed_family: str | None = None

    @classmethod
    def from_response(
        cls,
        status: int,
        parsed: HealthPayload | HealthParseError,
        *,
        elapsed_ms: float | None = None,
    ) -> HealthProbe:
        """Build the probe for an HTTP response whose body went through ``parse_health``."""
        if isinstance(parsed, HealthPayload):
            if status == 200:
                return cls(
                    HealthOutcome.OK,
                    status,
                    parsed,
                    True,
                    None,
                    elapsed_ms,
                    parsed.daemon_family,
                )
            return cls(HealthOutcome.HTTP_ERROR, status, None, False, f"http_{status}", elapsed_ms)
        if status != 200:
            return cls(HealthOutcome.HTTP_ERROR, status, None, False, f"http_{status}", elapsed_ms)
        return cls(
            HealthOutcome.INVALID,
            status,
            None,
            parsed.looks_kitty,
            parsed.reason,
            elapsed_ms,
            parsed.daemon_family if parsed.looks_kitty else None,
        )


@frozen_dataclass
class ListenerObservation:
    """Everything observed about one open or suspect listener in the scanned family's range."""

    family: DaemonFamily | Family
    port: int
    connect: ConnectState
    pid: int | None
    pid_error: PidError | None
    argv: tuple[str, ...] | None
    argv_error: ArgvError | None
    create_time: float | None
    exe: str | None
    health: HealthProbe
    pid_source: str | None = None  # e.g. "net_connections", "claimed", "lsof" (evidence only)
    # The root the root marker names, when it is not the caller's (``load_other_root``); None
    # when not gathered. Only consulted if ``other_root.root`` equals the marker's root.
    other_root: OtherRoot | None = None


@frozen_dataclass
class Foreground:
    """The caller's own view: which scope, range and singleton it is cleaning up for.

    ``executable`` should be resolved (``str(Path(sys.executable).resolve())``): it is compared
    with the exec marker and the process exe, both resolved paths, for the ``exec_mismatch``
    evidence (evidence only; it never changes the class). ``package_version`` None means
    "unknown": ``stale_version`` is then null.
    """

    family: DaemonFamily | Family
    range: PortRange
    daemon_root: Path
    scope_id: str
    executable: str
    package_version: str | None
    protocol_version: int
    singleton: StateRecord | None
    entry_signatures: tuple[str, ...] = DEFAULT_ENTRY_SIGNATURES


@frozen_dataclass
class DaemonIdentityRecord:
    """One classified listener (DID-14). Unknown values are None, never guessed.

    ``daemon_family`` is the SCANNED family (a listener claiming another family says so in
    ``evidence`` as ``claimed_family:<f>``); ``process_started_at`` is the OS create time, else
    the healthy payload's self-report; payload-derived fields are None without a healthy payload.
    """

    daemon_family: str
    port: int
    pid: int | None
    process_started_at: float | None
    protocol_version: int | None
    package_version: str | None
    singleton_scope_id: str | None
    daemon_root: str | None
    connect_state: str
    health_status: str
    identity_source: IdentitySource
    executable_summary: str | None
    spawn_shape_ok: bool | None
    self_report_matches_listener: bool | None
    start_time_matches: bool | None
    is_recorded_singleton: bool
    stale_version: bool | None
    busy: bool | None
    idle_s: float | None
    cleanup_class: CleanupClass
    skip_reason: SkipReason | None
    evidence: tuple[str, ...] = frozen_field(default=())
    #: The app whose family was scanned (not part of the document: ``to_dict`` leaves it out);
    #: ``sweep`` reads it so an app's records are judged against its own family and range.
    app: AppProfile = frozen_field(default=KITTY, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Static guard: a record can never be automatic-cleanup eligible with a reason to skip
        # it or without a PID to signal.
        if self.cleanup_class == CleanupClass.SAFE_AUTO and (
            self.skip_reason is not None or self.pid is None
        ):
            raise ValueError("a safe_auto record needs a pid and no skip_reason")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; keys are exactly the field names."""
        out: dict[str, Any] = {}
        for name in frozen_field_names(self):
            if name == "app":
                continue
            value = getattr(self, name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


def _text(value: object) -> str:
    """The wire string of an enum member, a family or a plain string (callers may pass any)."""
    if isinstance(value, Family):
        return value.name
    return str(value.value) if isinstance(value, Enum) else str(value)


def _profile(family: object) -> AppProfile:
    """Whose markers to read: a bound family's app; kitty's for kitty's enum or a plain name."""
    return family.app if isinstance(family, Family) else KITTY


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= START_TIME_TOLERANCE_S


def _is_singleton(obs: ListenerObservation, fg: Foreground, payload: HealthPayload | None) -> bool:
    record = fg.singleton
    if record is None or obs.port != record.port:
        return False
    if obs.pid is not None:
        return obs.pid == record.pid and _close(obs.create_time, record.process_started_at)
    return (
        payload is not None
        and payload.pid == record.pid
        and payload.port == record.port
        and _close(payload.process_started_at, record.process_started_at)
    )


def _other_root(obs: ListenerObservation, markers: Markers | None) -> OtherRoot | None:
    other = obs.other_root
    if other is None or markers is None or markers.conflict or not markers.root:
        return None
    return other if other.root == markers.root else None


def _other_home_singleton(obs: ListenerObservation, other: OtherRoot | None) -> bool:
    """The other root exists and its state record names this very process (pid, port, start)."""
    record = other.state if other is not None and other.exists else None
    return (
        record is not None
        and obs.pid is not None
        and obs.pid == record.pid
        and obs.port == record.port
        and _close(obs.create_time, record.process_started_at)
    )


def _executable_summary(obs: ListenerObservation, markers: Markers | None) -> str | None:
    parts = []
    if obs.exe is not None:
        parts.append(f"exe={obs.exe}")
    if markers is not None and markers.exe is not None:
        parts.append(f"exec_marker={markers.exe}")
    return " ".join(parts) or None


def _evidence(
    obs: ListenerObservation,
    fg: Foreground,
    payload: HealthPayload | None,
    markers: Markers | None,
) -> tuple[str, ...]:
    ev: list[str] = []
    if obs.connect == ConnectState.SUSPECT:
        ev.append("connect_suspect")
    if obs.health.outcome != HealthOutcome.OK:
        ev.append(f"health_{_text(obs.health.outcome)}")
    if obs.health.error and obs.health.outcome == HealthOutcome.INVALID:
        ev.append(f"health_error:{obs.health.error}")
    claimed = payload.daemon_family if payload is not None else obs.health.claimed_family
    if claimed is not None and claimed != _text(obs.family):
        ev.append(f"claimed_family:{claimed}")
    if obs.pid_source:
        ev.append(f"pid_source:{obs.pid_source}")
    if obs.pid_error is not None:
        ev.append(f"pid_error:{_text(obs.pid_error)}")
    if obs.argv_error is not None:
        ev.append(f"argv_error:{_text(obs.argv_error)}")
    if markers is not None:
        if not markers.root_present:
            ev.append("root_marker:absent")
        elif markers.conflict:
            ev.append("root_marker:conflict")
        elif not markers.root:
            ev.append("root_marker:empty")
        elif markers.root != str(fg.daemon_root):
            ev.append("root_marker:other_root")
            other = _other_root(obs, markers)
            if other is not None and not other.exists:
                ev.append("root_missing")
        exe = markers.exe if markers.exe is not None else obs.exe
        if exe is not None and exe != fg.executable:
            ev.append("exec_mismatch")
    if payload is not None:
        if fg.package_version is not None and payload.package_version != fg.package_version:
            ev.append(f"stale_version:{payload.package_version}!={fg.package_version}")
        if payload.protocol_version != fg.protocol_version:
            ev.append(f"protocol_mismatch:{payload.protocol_version}!={fg.protocol_version}")
    return tuple(ev)


def _decide(
    obs: ListenerObservation,
    fg: Foreground,
    payload: HealthPayload | None,
    markers: Markers | None,
    shaped: bool,
    singleton: bool,
) -> tuple[CleanupClass, SkipReason | None, IdentitySource]:
    """DID-12, first matching row wins. Returns (class, reason, identity source)."""
    never, operator = CleanupClass.NEVER_TOUCH, CleanupClass.OPERATOR_REQUIRED
    health = obs.health
    live = health.outcome == HealthOutcome.OK and payload is not None
    looks_kitty = live or (health.outcome == HealthOutcome.INVALID and health.looks_kitty)
    claimed = payload.daemon_family if payload is not None else health.claimed_family
    # Row 1: a family scan never acts outside its own range.
    if obs.port not in fg.range:
        return never, SkipReason.OUT_OF_RANGE, IdentitySource.NONE
    # Row 2
    if looks_kitty and claimed is not None and claimed != _text(obs.family):
        return never, SkipReason.OTHER_FAMILY, IdentitySource.HEALTH_SELF_REPORT
    # Row 3
    if not looks_kitty and not shaped:
        reason = SkipReason.THIRD_PARTY if health.http_status is not None else SkipReason.NOT_KITTY
        return never, reason, IdentitySource.NONE
    # Row 4
    if singleton:
        return never, SkipReason.IS_RECORDED_SINGLETON, IdentitySource.STATE_RECORD
    # Row 5: a kitty-looking listener whose PID is unknown stays visible (never silently dropped).
    if obs.pid is None:
        return operator, SkipReason.MISSING_PID, IdentitySource.HEALTH_SELF_REPORT
    # Row 6
    if obs.argv is None or markers is None:
        return operator, SkipReason.ARGV_UNREADABLE, IdentitySource.HEALTH_SELF_REPORT
    # Row 7: health alone is never kill authority; anyone can serve a kitty-shaped JSON.
    if not shaped:
        return never, SkipReason.THIRD_PARTY, IdentitySource.NONE
    # Row 8
    if not markers.root_present:
        return operator, SkipReason.PRE_MARKER, IdentitySource.NONE
    # Row 9a (issue 10): the live singleton of another daemon root is never ours to touch.
    if markers.root != str(fg.daemon_root) and _other_home_singleton(
        obs, _other_root(obs, markers)
    ):
        return never, SkipReason.OTHER_HOME_SINGLETON, IdentitySource.STATE_RECORD
    # Row 9
    if markers.conflict or not markers.root or markers.root != str(fg.daemon_root):
        return operator, SkipReason.CROSS_ROOT, IdentitySource.CMDLINE_MARKER
    # Row 10: a timeout is never kill authority for automatic cleanup.
    if not live or obs.connect != ConnectState.OPEN or payload is None:
        return operator, SkipReason.UNRESPONSIVE, IdentitySource.CMDLINE_MARKER
    # Row 11
    if payload.singleton_scope_id != fg.scope_id:
        return operator, SkipReason.OTHER_NAMESPACE, IdentitySource.HEALTH_SELF_REPORT
    # Row 12
    if payload.pid != obs.pid or payload.port != obs.port:
        return operator, SkipReason.PID_PORT_MISMATCH, IdentitySource.HEALTH_SELF_REPORT
    # Row 13: the OS start time must confirm the self-report (defeats PID reuse).
    if not _close(obs.create_time, payload.process_started_at):
        return operator, SkipReason.CREATE_TIME_MISMATCH, IdentitySource.HEALTH_SELF_REPORT
    # Row 14: package, protocol and executable differences are allowed (that is what stale is).
    return CleanupClass.SAFE_AUTO, None, IdentitySource.HEALTH_SELF_REPORT


def classify(candidate: ListenerObservation, foreground: Foreground) -> DaemonIdentityRecord:
    """Classify one listener; pure, total and deterministic (DID-12)."""
    obs, fg = candidate, foreground
    health = obs.health
    payload = health.payload if health.outcome == HealthOutcome.OK else None
    profile = _profile(fg.family)
    markers = parse_markers(obs.argv, profile=profile) if obs.argv is not None else None
    shaped = obs.argv is not None and spawn_shaped(obs.argv, fg.entry_signatures, profile=profile)
    singleton = _is_singleton(obs, fg, payload)
    cleanup_class, reason, source = _decide(obs, fg, payload, markers, shaped, singleton)
    self_matches = (
        None
        if payload is None or obs.pid is None
        else payload.pid == obs.pid and payload.port == obs.port
    )
    start_matches = (
        None
        if payload is None or obs.create_time is None
        else _close(obs.create_time, payload.process_started_at)
    )
    stale = (
        None
        if payload is None or fg.package_version is None
        else payload.package_version != fg.package_version
    )
    started = obs.create_time
    if started is None and payload is not None:
        started = payload.process_started_at
    return DaemonIdentityRecord(
        daemon_family=_text(obs.family),
        port=obs.port,
        pid=obs.pid,
        process_started_at=started,
        protocol_version=payload.protocol_version if payload else None,
        package_version=payload.package_version if payload else None,
        singleton_scope_id=payload.singleton_scope_id if payload else None,
        daemon_root=payload.daemon_root if payload else None,
        connect_state=_text(obs.connect),
        health_status=_text(health.outcome),
        identity_source=source,
        executable_summary=_executable_summary(obs, markers),
        spawn_shape_ok=shaped if obs.argv is not None else None,
        self_report_matches_listener=self_matches,
        start_time_matches=start_matches,
        is_recorded_singleton=singleton,
        stale_version=stale,
        busy=payload.busy if payload else None,
        idle_s=payload.idle_s if payload else None,
        cleanup_class=cleanup_class,
        skip_reason=reason,
        evidence=_evidence(obs, fg, payload, markers),
        app=profile,
    )
