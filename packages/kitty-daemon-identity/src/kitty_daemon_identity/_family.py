"""kitty's historical family enum and the per-family file names, now answered by the app profile.

``DaemonFamily`` names kitty's two families; it is a ``str`` enum, so ``DaemonFamily.SYNC`` is
accepted wherever a family name is. Apps build their own ``Family`` values (``_profile.py``); every
function here takes either.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from ._ports import PortRange
from ._profile import DASHBOARD_RANGE, SYNC_RANGE, Family, as_family

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


class DaemonFamily(StrEnum):
    """kitty's daemon kinds, each with its own range; cleanup for one never touches another's."""

    SYNC = "sync"
    DASHBOARD = "dashboard"


def range_variable(family: Family | str) -> str:
    """The environment variable that overrides ``family``'s range (``KITTY_SYNC_PORTS``)."""
    return as_family(family).range_variable


def family_range(family: Family | str) -> PortRange:
    """The family's port range, re-reading its environment override at every call (DID-02).

    Raises ``RangeConfigError`` if an override of the family's profile is malformed or two of
    its families overlap: overlapping ranges would let one family's cleanup reach the other's.
    """
    return as_family(family).range()


def state_path(root: Path, family: Family | str) -> Path:
    """``<root>/state.json`` (kitty's sync), ``<root>/<family>-state.json`` otherwise."""
    return as_family(family).state_path(root)


def spawn_lock_path(root: Path, family: Family | str) -> Path:
    """``<root>/spawn.lock`` (kitty's sync), ``<root>/<family>-spawn.lock`` otherwise."""
    return as_family(family).spawn_lock_path(root)


def log_path(root: Path, family: Family | str) -> Path:
    """``<root>/daemon.log`` (kitty's sync), ``<root>/<family>.log``; the backup appends ``.1``."""
    return as_family(family).log_path(root)


def scope_key_path(root: Path) -> Path:
    """``<root>/scope.key``, shared by every family of the scope."""
    return Path(root) / "scope.key"
