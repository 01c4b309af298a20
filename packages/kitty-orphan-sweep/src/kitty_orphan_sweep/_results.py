"""What a sweep reports: each input record lands in exactly one of three lists (SWP-07/12/13)."""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any

from kitty_filelock import frozen_dataclass, frozen_field, frozen_field_names

from . import _constants


class CleanupPath(StrEnum):
    """The escalation stage that made a swept process go away."""

    HTTP_SHUTDOWN = "http_shutdown"
    TERMINATE = "terminate"
    KILL = "kill"
    ALREADY_GONE = "already_gone"


class FailureReason(StrEnum):
    """Why an attempted target was not swept (closed vocabulary, SWP-13)."""

    PID_REUSED = "pid_reused"
    IDENTITY_CHANGED = "identity_changed"
    REFUSED_SELF = "refused_self"
    ACCESS_DENIED_ON_TERMINATE = "access_denied_on_terminate"
    ACCESS_DENIED_ON_KILL = "access_denied_on_kill"
    STILL_ALIVE_AFTER_KILL = "still_alive_after_kill"
    PROCESS_GONE_BUT_PORT_STILL_LISTENING = "process_gone_but_port_still_listening"
    NO_PID_AND_HTTP_SHUTDOWN_FAILED = "no_pid_and_http_shutdown_failed"
    #: The OS does not show the port's socket as the expected process's and uid's: no key sent.
    SOCKET_NOT_OWNED = "socket_not_owned"
    UNKNOWN_FAILURE = "unknown_failure"


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


@frozen_dataclass
class SweptEntry:
    """A target whose process is gone and whose port no longer listens (for that PID)."""

    pid: int | None
    port: int
    package_version: str | None
    protocol_version: int | None
    cleanup_class: str
    cleanup_path: CleanupPath
    reason: str
    duration_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(getattr(self, k)) for k in frozen_field_names(self)}


@frozen_dataclass
class SkippedEntry:
    """A record that was not a target (never_touch, or operator_required without force)."""

    pid: int | None
    port: int
    cleanup_class: str
    skip_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(getattr(self, k)) for k in frozen_field_names(self)}


@frozen_dataclass
class FailedEntry:
    """A target that was attempted and is not (provably) gone; `detail` is short and secret-free."""

    pid: int | None
    port: int
    cleanup_class: str
    failure_reason: FailureReason
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(getattr(self, k)) for k in frozen_field_names(self)}


@frozen_dataclass
class ResetResult:
    """Outcome of one sweep; lists are sorted by port."""

    swept: tuple[SweptEntry, ...] = ()
    skipped: tuple[SkippedEntry, ...] = ()
    failed: tuple[FailedEntry, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "swept": [e.to_dict() for e in self.swept],
            "skipped": [e.to_dict() for e in self.skipped],
            "failed": [e.to_dict() for e in self.failed],
        }


@frozen_dataclass
class EscalationBudgets:
    """Per-stage waits of the escalation (SWP-10), each applied per target, all targets in parallel.

    Defaults come from the module constants at construction time, so patching
    ``kitty_orphan_sweep._constants.TERM_STAGE_S`` (say) in a test shortens every sweep.
    """

    http_s: float = frozen_field(default_factory=lambda: _constants.HTTP_STAGE_S)
    term_s: float = frozen_field(default_factory=lambda: _constants.TERM_STAGE_S)
    kill_s: float = frozen_field(default_factory=lambda: _constants.KILL_STAGE_S)
    port_s: float = frozen_field(default_factory=lambda: _constants.PORT_CLOSE_WAIT_S)

    def __post_init__(self) -> None:
        for name in ("http_s", "term_s", "kill_s", "port_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(
                    f"EscalationBudgets.{name} must be a number of seconds >= 0, got {value!r}"
                )

    @property
    def total_s(self) -> float:
        """Upper bound of one target's escalation (and so of a whole parallel sweep)."""
        return self.http_s + self.term_s + self.kill_s + self.port_s
