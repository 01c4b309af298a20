"""argv markers and spawn shape (DID-05, DID-06).

The root marker is kill authority (it names the daemon root the process belongs to); the exec
marker is evidence only (an upgraded interpreter path must not hide a daemon from cleanup).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from kitty_filelock import frozen_dataclass

from ._constants import DEFAULT_ENTRY_SIGNATURES
from ._profile import KITTY, AppProfile

__all__ = ["Markers", "marker_args", "parse_markers", "spawn_shaped", "strip_markers"]


def marker_args(root: Path | str, exe: Path | str, *, profile: AppProfile = KITTY) -> list[str]:
    """The two argv elements a spawner appends: resolved daemon root and resolved interpreter.

    The prefixes are the profile's (``--kitty-daemon-root=`` for kitty, ``--acme-daemon-root=``).
    """
    return [
        f"{profile.root_marker_prefix}{Path(root).resolve()}",
        f"{profile.exec_marker_prefix}{Path(exe).resolve()}",
    ]


@frozen_dataclass
class Markers:
    """Markers found in an argv.

    ``root`` is the first root-marker value (``""`` when the marker is present but empty, which
    matches no daemon root); ``root_present`` says whether any root marker was seen; ``conflict``
    is True when two root markers disagree (never kill authority).
    """

    root: str | None
    exe: str | None
    root_present: bool
    conflict: bool


def parse_markers(argv: Iterable[str], *, profile: AppProfile = KITTY) -> Markers:
    """Find the profile's markers, each one whole argv element (``--kitty-daemon-root=<p>``)."""
    root_prefix, exec_prefix = profile.root_marker_prefix, profile.exec_marker_prefix
    roots: list[str] = []
    exes: list[str] = []
    for element in argv:
        if element.startswith(root_prefix):
            roots.append(element[len(root_prefix) :])
        elif element.startswith(exec_prefix):
            exes.append(element[len(exec_prefix) :])
    return Markers(
        root=roots[0] if roots else None,
        exe=exes[0] if exes else None,
        root_present=bool(roots),
        conflict=len(set(roots)) > 1,
    )


def _basename(element: str) -> str:
    # argv may come from another OS's conventions (a Windows path seen in a report): split on both.
    return element.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def strip_markers(argv: Iterable[str], *, profile: AppProfile = KITTY) -> list[str]:
    """argv without the profile's markers (a daemon's own option parser never sees them)."""
    prefixes = (profile.root_marker_prefix, profile.exec_marker_prefix)
    return [a for a in argv if not a.startswith(prefixes)]


def spawn_shaped(
    argv: Sequence[str] | None,
    entry_signatures: Iterable[str] = DEFAULT_ENTRY_SIGNATURES,
    *,
    profile: AppProfile = KITTY,
) -> bool:
    """True iff argv carries a marker, or an element equal to a signature or whose basename is one.

    ``kitty-daemon.exe`` matches ``kitty-daemon`` so the console script is recognised on Windows.
    """
    if not argv:
        return False
    signatures = frozenset(s for s in entry_signatures if s)
    prefixes = (profile.root_marker_prefix, profile.exec_marker_prefix)
    for element in argv:
        if element.startswith(prefixes):
            return True
        if element in signatures:
            return True
        base = _basename(element)
        if base in signatures or base.removesuffix(".exe") in signatures:
            return True
    return False
