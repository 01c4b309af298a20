"""Daemon families, their half-open port ranges and their per-family files in the daemon root."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from ._errors import RangeConfigError

__all__ = [
    "DASHBOARD_RANGE",
    "SYNC_RANGE",
    "DaemonFamily",
    "PortRange",
    "family_range",
    "log_path",
    "range_variable",
    "scope_key_path",
    "spawn_lock_path",
    "state_path",
]

_MIN_PORT: Final = 1
_MAX_STOP: Final = 65536  # half-open: stop may be one past the last valid port


class DaemonFamily(StrEnum):
    """A daemon kind with its own port range; cleanup for one family never touches another's."""

    SYNC = "sync"
    DASHBOARD = "dashboard"


@dataclass(frozen=True, slots=True)
class PortRange:
    """Half-open port interval ``[start, stop)``."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        for name in ("start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"PortRange {name} must be an int, got {value!r}")
        if not (_MIN_PORT <= self.start < self.stop <= _MAX_STOP):
            raise ValueError(
                f"port range {self.start}-{self.stop} is invalid: need "
                f"{_MIN_PORT} <= start < stop <= {_MAX_STOP} (half-open, e.g. 9400-9450)"
            )

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """Parse ``"START-STOP"`` (half-open); raise ``ValueError`` naming the text otherwise."""
        start_text, sep, stop_text = text.strip().partition("-")
        if not sep:
            raise ValueError(f"port range {text!r} is not START-STOP (e.g. 9400-9450)")
        try:
            start, stop = int(start_text, 10), int(stop_text, 10)
        except ValueError:
            raise ValueError(
                f"port range {text!r} is not START-STOP with integers (e.g. 9400-9450)"
            ) from None
        return cls(start, stop)

    def overlaps(self, other: PortRange) -> bool:
        return self.start < other.stop and other.start < self.stop

    def __contains__(self, port: object) -> bool:
        if isinstance(port, bool) or not isinstance(port, int):
            return False
        return self.start <= port < self.stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"{self.start}-{self.stop}"


SYNC_RANGE: Final = PortRange(9400, 9450)
DASHBOARD_RANGE: Final = PortRange(9237, 9337)

_DEFAULTS: Final = {DaemonFamily.SYNC: SYNC_RANGE, DaemonFamily.DASHBOARD: DASHBOARD_RANGE}
_VARIABLES: Final = {
    DaemonFamily.SYNC: "KITTY_SYNC_PORTS",
    DaemonFamily.DASHBOARD: "KITTY_DASHBOARD_PORTS",
}


def range_variable(family: DaemonFamily) -> str:
    """The environment variable that overrides ``family``'s range."""
    return _VARIABLES[DaemonFamily(family)]


def _configured(family: DaemonFamily) -> PortRange:
    variable = _VARIABLES[family]
    text = os.environ.get(variable, "")
    if not text.strip():
        return _DEFAULTS[family]
    try:
        return PortRange.parse(text)
    except ValueError as exc:
        raise RangeConfigError(variable, text, f"{exc}; unset it or fix the range") from None


def family_range(family: DaemonFamily) -> PortRange:
    """The family's port range, re-reading its environment override at every call (DID-02).

    Raises ``RangeConfigError`` if either family's override is malformed or the two overlap:
    overlapping ranges would let one family's cleanup reach the other's daemons.
    """
    family = DaemonFamily(family)
    own = _configured(family)
    (other_family,) = (f for f in DaemonFamily if f is not family)
    other = _configured(other_family)
    if own.overlaps(other):
        variable = _VARIABLES[family]
        raise RangeConfigError(
            variable,
            os.environ.get(variable, str(own)),
            f"range {own} overlaps the {other_family.value} range {other}; "
            f"choose disjoint ranges for {_VARIABLES[family]} and {_VARIABLES[other_family]}",
        )
    return own


# SPEC §0.3: the sync family keeps the historical un-prefixed names.
_PREFIX: Final = {DaemonFamily.SYNC: "", DaemonFamily.DASHBOARD: "dashboard-"}
_LOG_NAME: Final = {DaemonFamily.SYNC: "daemon.log", DaemonFamily.DASHBOARD: "dashboard.log"}


def state_path(root: Path, family: DaemonFamily) -> Path:
    """``<root>/state.json`` (sync) or ``<root>/dashboard-state.json`` (dashboard)."""
    return Path(root) / f"{_PREFIX[DaemonFamily(family)]}state.json"


def spawn_lock_path(root: Path, family: DaemonFamily) -> Path:
    """``<root>/spawn.lock`` (sync) or ``<root>/dashboard-spawn.lock`` (dashboard)."""
    return Path(root) / f"{_PREFIX[DaemonFamily(family)]}spawn.lock"


def log_path(root: Path, family: DaemonFamily) -> Path:
    """``<root>/daemon.log`` (sync) or ``<root>/dashboard.log``; the backup appends ``.1``."""
    return Path(root) / _LOG_NAME[DaemonFamily(family)]


def scope_key_path(root: Path) -> Path:
    """``<root>/scope.key``, shared by every family of the scope."""
    return Path(root) / "scope.key"
