"""The report model: plain frozen facts per section, findings, repairs, and the whole report.

Collectors (I/O) turn the machine's state into these facts; the findings engine (pure) turns facts
into findings; the document builder and the renderer only read them. Nothing here holds a token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Final

from kitty_filelock import frozen_dataclass, frozen_field

REPORT_SCHEMA_VERSION: Final = 1
DEFAULT_STUCK_THRESHOLD_S: Final = 60.0
OVERDUE_SLACK_S: Final = 5.0

JsonObject = Mapping[str, object]


class Severity(StrEnum):
    INFO = "info"
    WARN = "warn"
    CRITICAL = "critical"


class SectionName(StrEnum):
    """The seven sections, in display order (DOC-02)."""

    IDENTITY = "identity"
    TOKENS = "tokens"
    STORAGE = "storage"
    REFRESH_LOCK = "refresh_lock"
    DAEMONS = "daemons"
    ORPHANS = "orphans"
    FINDINGS = "findings"

    @property
    def heading(self) -> str:
        return _TITLES[self]


_TITLES: Final = {
    SectionName.IDENTITY: "Identity",
    SectionName.TOKENS: "Tokens",
    SectionName.STORAGE: "Storage",
    SectionName.REFRESH_LOCK: "Refresh lock",
    SectionName.DAEMONS: "Daemon",
    SectionName.ORPHANS: "Orphans",
    SectionName.FINDINGS: "Findings",
}


class SectionStatus(StrEnum):
    OK = "ok"
    CRASHED = "crashed"


class HomeSource(StrEnum):
    DEFAULT = "default"
    ENV = "env"
    FLAG = "flag"


@frozen_dataclass
class Brand:
    """The application the doctor speaks for, in the words its users see (from its AppProfile).

    kitty's own brand is the default; an app embedding the doctor (issue 13) gets its name in
    every sentence, its doctor command in every remediation and its variables in every hint.
    """

    app: str = "kitty"
    #: The doctor command as its users type it (`kitty-doctor`, `acme auth doctor`).
    tool: str = "kitty-doctor"
    #: The variable that moves the home (None: the app pins its home).
    home_env: str | None = "KITTY_HOME"
    env_prefix: str = "KITTY"

    @property
    def login_env(self) -> str:
        """The variable naming the login command remediations show (`KITTY_LOGIN_COMMAND`)."""
        return f"{self.env_prefix}_LOGIN_COMMAND"


KITTY_BRAND: Final = Brand()


@frozen_dataclass
class HomeFacts:
    path: str
    source: HomeSource
    exists: bool = True
    #: The variable a home `from env` came from.
    env: str | None = "KITTY_HOME"


@frozen_dataclass
class IdentityFacts:
    state: str  # authenticated | not_authenticated | expired | corrupt | unreadable
    subject: str | None
    email: str | None
    session_hash: str | None


@frozen_dataclass
class TokenFacts:
    present: bool
    access_expires_in_s: float | None
    refresh_expires_in_s: float | None
    """None with `present` means server-managed (the client never invents a refresh expiry)."""
    issued_at: str | None
    scope: str | None
    token_type: str | None


@frozen_dataclass
class StorageFacts:
    path: str
    exists: bool
    size: int | None
    mode: int | None
    owner_ok: bool | None
    dir_path: str
    dir_mode: int | None
    home_path: str
    home_mode: int | None
    parse: str  # ok | missing | corrupt | unreadable
    corrupt_reason: str | None
    #: Unreadable because the OS (or kitty: another user's file) denied it, not because of
    #: what the path is: the file may be fine (KD106), not corrupt (KD102).
    permission_denied: bool = False


@frozen_dataclass
class LockRecordFacts:
    pid: int
    host: str | None
    acquired_at: str | None
    age_s: float | None
    label: str | None
    max_hold_s: float | None


@frozen_dataclass
class LockHolder:
    """A process the OS shows holding the lock now (its command line, when readable)."""

    pid: int
    cmdline: str | None

    def __str__(self) -> str:
        return f"pid {self.pid}" + (f" ({self.cmdline})" if self.cmdline else "")


@frozen_dataclass
class LockFacts:
    path: str
    exists: bool
    held: bool | None
    holder_pid: int | None
    holder_source: str | None
    holder_cmdline: str | None
    record: LockRecordFacts | None
    stale_record: bool
    mode: str | None
    fs_type: str | None
    network_fs: bool
    this_host: str
    stuck_threshold_s: float
    #: Who holds the lock now (kitty-filelock's `holder_pids`, else the taker if still alive).
    #: `holder_pid` is the pid that took it, which may have exited while a child holds on.
    holders: tuple[LockHolder, ...] = ()
    #: Why the lock file could not even be looked at (its directory shuts us out), else None.
    unreadable: str | None = None

    @property
    def taker_exited(self) -> bool:
        """The pid that took the lock is not among the processes holding it now."""
        return self.holder_pid is not None and self.holder_pid not in {h.pid for h in self.holders}

    @property
    def foreign_host(self) -> bool:
        return self.record is not None and self.record.host not in (None, self.this_host)

    @property
    def holder_age_s(self) -> float | None:
        """Age of the hold, when the record belongs to the true holder (else unknown)."""
        if not self.held or self.record is None:
            return None
        if self.holder_pid is not None and self.record.pid != self.holder_pid:
            return None
        return self.record.age_s

    @property
    def stuck(self) -> bool:
        """KD201: a live holder past the threshold or past its own `max_hold_s + 5`."""
        age = self.holder_age_s
        if age is None:
            return False
        if age > self.stuck_threshold_s:
            return True
        max_hold = self.record.max_hold_s if self.record is not None else None
        return max_hold is not None and age > max_hold + OVERDUE_SLACK_S

    @property
    def stale_and_old(self) -> bool:
        """KD202: a record with no holder, older than the threshold."""
        if not self.stale_record or self.record is None or self.record.age_s is None:
            return False
        return self.record.age_s > self.stuck_threshold_s


class DaemonStatus(StrEnum):
    """kitty-orphan-sweep's `RecordedStatus`, value for value (a test pins that they agree).

    The doctor's report schema owns these words; the verdict itself is kitty-orphan-sweep's
    `check_recorded`. Not imported from there so that `--help` and `--version` stay light.
    """

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    IMPOSTOR = "impostor"
    FOREIGN = "foreign"
    DEAD = "dead"
    REUSED = "reused"
    UNVERIFIED = "unverified"


@frozen_dataclass
class RecordedDaemon:
    pid: int
    port: int
    package_version: str
    protocol_version: int
    started_at: str
    process_started_at: float


@frozen_dataclass
class DaemonFacts:
    family: str
    state_path: str
    recorded: RecordedDaemon
    status: DaemonStatus
    health_error: str | None
    health_package_version: str | None
    expected_version: str | None
    busy: bool | None
    idle_s: float | None

    @property
    def version_drift(self) -> bool | None:
        """None when either version is unknown (IMP-24: say so rather than guess)."""
        actual = self.health_package_version or self.recorded.package_version
        if self.expected_version is None or not actual:
            return None
        return actual != self.expected_version


@frozen_dataclass
class ScopeKeyFacts:
    path: str
    exists: bool
    secure: bool


@frozen_dataclass
class DaemonsFacts:
    root: str
    families: tuple[str, ...]
    daemons: Mapping[str, DaemonFacts | None]
    scope_key: ScopeKeyFacts


@frozen_dataclass
class OrphansFacts:
    families: tuple[str, ...]
    records: Mapping[str, tuple[JsonObject, ...]]
    """Per family: `DaemonIdentityRecord.to_dict()` of every in-range listener except the
    recorded singleton."""


@frozen_dataclass
class Remediation:
    command: str | None
    description: str


@frozen_dataclass
class Finding:
    """One finding: a stable `id`/`name`, its `summary` (the text, filled from `params`, the
    structured fields an app may re-word it from) and what to do about it."""

    id: str
    name: str
    severity: Severity
    summary: str
    remediation: Remediation
    params: Mapping[str, str | int | float] = frozen_field(default_factory=dict, compare=False)


@frozen_dataclass
class SectionResult:
    name: SectionName
    status: SectionStatus
    duration_ms: float
    error: str | None = None
    traceback: str | None = None


@frozen_dataclass
class UnstickResult:
    released: bool
    message: str


@frozen_dataclass
class Repairs:
    reset: JsonObject | None = None
    unstick_lock: UnstickResult | None = None


@frozen_dataclass
class Report:
    """The whole report: the typed twin of the `--json` document (`report_document`)."""

    tool_version: str
    packages: Mapping[str, str]
    generated_at: str
    duration_ms: float
    home: HomeFacts
    families: tuple[str, ...]
    identity: IdentityFacts | None
    tokens: TokenFacts | None
    storage: StorageFacts | None
    refresh_lock: LockFacts | None
    daemons: DaemonsFacts | None
    orphans: OrphansFacts | None
    findings: tuple[Finding, ...]
    sections: tuple[SectionResult, ...]
    repairs: Repairs = frozen_field(default_factory=Repairs)
    #: The port range scanned per family, half-open `(start, stop)`.
    ranges: Mapping[str, tuple[int, int]] = frozen_field(default_factory=dict)
    brand: Brand = KITTY_BRAND
    #: Masks every secret the run saw (its tokens, its scope key) in text about to be shown.
    mask: Callable[[str], str] | None = frozen_field(default=None, repr=False, compare=False)

    def scrub(self, text: str) -> str:
        return text if self.mask is None else self.mask(text)

    @property
    def crashed(self) -> bool:
        return any(s.status is SectionStatus.CRASHED for s in self.sections)

    @property
    def exit_code(self) -> int:
        """DOC-10: 2 for a crashed section, 1 for a remaining critical finding, else 0."""
        if self.crashed:
            return 2
        if any(f.severity is Severity.CRITICAL for f in self.findings):
            return 1
        return 0

    def counts(self) -> tuple[int, int, int]:
        """(critical, warn, info)."""
        sev = [f.severity for f in self.findings]
        return (sev.count(Severity.CRITICAL), sev.count(Severity.WARN), sev.count(Severity.INFO))
