"""argv markers and spawn shape (DID-05, DID-06).

The root marker is kill authority (it names the daemon root the process belongs to); the exec
marker is evidence only (an upgraded interpreter path must not hide a daemon from cleanup).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._constants import DEFAULT_ENTRY_SIGNATURES, EXEC_MARKER_PREFIX, ROOT_MARKER_PREFIX

__all__ = ["Markers", "marker_args", "parse_markers", "spawn_shaped"]


def marker_args(root: Path | str, exe: Path | str) -> list[str]:
    """The two argv elements a spawner appends: resolved daemon root and resolved interpreter."""
    return [
        f"{ROOT_MARKER_PREFIX}{Path(root).resolve()}",
        f"{EXEC_MARKER_PREFIX}{Path(exe).resolve()}",
    ]


@dataclass(frozen=True, slots=True)
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


def parse_markers(argv: Iterable[str]) -> Markers:
    """Find the markers; each must be one whole argv element (``--kitty-daemon-root=<path>``)."""
    roots: list[str] = []
    exes: list[str] = []
    for element in argv:
        if element.startswith(ROOT_MARKER_PREFIX):
            roots.append(element[len(ROOT_MARKER_PREFIX) :])
        elif element.startswith(EXEC_MARKER_PREFIX):
            exes.append(element[len(EXEC_MARKER_PREFIX) :])
    return Markers(
        root=roots[0] if roots else None,
        exe=exes[0] if exes else None,
        root_present=bool(roots),
        conflict=len(set(roots)) > 1,
    )


def _basename(element: str) -> str:
    # argv may come from another OS's conventions (a Windows path seen in a report): split on both.
    return element.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def spawn_shaped(
    argv: Sequence[str] | None, entry_signatures: Iterable[str] = DEFAULT_ENTRY_SIGNATURES
) -> bool:
    """True iff argv carries a marker, or an element equal to a signature or whose basename is one.

    ``kitty-daemon.exe`` matches ``kitty-daemon`` so the console script is recognised on Windows.
    """
    if not argv:
        return False
    signatures = frozenset(s for s in entry_signatures if s)
    for element in argv:
        if element.startswith((ROOT_MARKER_PREFIX, EXEC_MARKER_PREFIX)):
            return True
        if element in signatures:
            return True
        base = _basename(element)
        if base in signatures or base.removesuffix(".exe") in signatures:
            return True
    return False
