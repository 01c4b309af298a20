"""``installed_version``: an installed distribution's version without importing importlib.metadata.

Every kitty package's ``__version__`` and the doctor's report of the five versions need it at
start-up. ``importlib.metadata`` would answer too, but importing it pulls in ``email``,
``zipfile`` and ``csv`` (about 20 ms, more than the rest of the lock package), which would
dominate the cold start of a short command like ``kitty-doctor --json``. The common layout — a
``*.dist-info`` directory on ``sys.path``, which is what pip, uv and editable installs write —
is read here directly, searched the way ``importlib.metadata`` searches (``sys.path`` in order,
the same name normalisation); anything else (eggs, zip imports, a custom finder, a missing
distribution) is left to ``importlib.metadata`` itself, so the answer is always the one it
would give.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Final

_SEPARATORS: Final = re.compile(r"[-_.]+")
_INFO_SUFFIXES: Final = (".dist-info", ".egg-info")


def _normalized(name: str) -> str:
    """importlib.metadata's key for a name: PEP 503 normalisation, dashes as underscores."""
    return _SEPARATORS.sub("_", name).lower()


def _metadata_version(dist_info: str) -> str | None:
    try:
        with open(os.path.join(dist_info, "METADATA"), encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the headers end at the first blank line
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() == "version":
                    return value.strip()
    except (OSError, UnicodeDecodeError):
        pass
    return None


@functools.lru_cache(maxsize=64)
def _infos(directory: str, mtime_ns: int) -> dict[str, str]:
    """Normalised name -> the first ``*.dist-info``/``*.egg-info`` child of `directory` with
    that name, in listing order. Keyed by the directory's mtime, as importlib.metadata caches:
    an install in between changes it."""
    found: dict[str, str] = {}
    for child in os.listdir(directory):
        low = child.lower()
        if low.endswith(_INFO_SUFFIXES):
            found.setdefault(_normalized(low.rpartition(".")[0].partition("-")[0]), child)
    return found


def _from_dist_info(wanted: str) -> str | None:
    """The version in the first matching ``.dist-info`` on ``sys.path``; None if there is
    none, or if an egg or an ``.egg-info`` comes first."""
    for entry in sys.path:
        directory = entry or "."
        if directory.lower().endswith(".egg"):
            return None  # an egg's metadata has its own layout: importlib.metadata's case
        try:
            mtime_ns = os.stat(directory).st_mtime_ns
            child = _infos(directory, mtime_ns).get(wanted)
        except OSError:  # a zip file (the stdlib's) or a missing directory
            continue
        if child is None:
            continue
        if not child.lower().endswith(".dist-info"):
            return None
        return _metadata_version(os.path.join(directory, child))
    return None


def _custom_finders() -> bool:
    """Does a meta path finder other than the standard one list distributions? It would be
    asked first by importlib.metadata."""
    from importlib.machinery import PathFinder

    return any(
        hasattr(finder, "find_distributions") and finder is not PathFinder
        for finder in sys.meta_path
    )


def installed_version(distribution: str) -> str | None:
    """The version of the installed distribution named `distribution` (``"kitty-filelock"``),
    as ``importlib.metadata.version`` reports it, or None when it is not installed."""
    if not _custom_finders():
        found = _from_dist_info(_normalized(distribution))
        if found is not None:
            return found
    # Rare layouts only: importlib.metadata is expensive to import, and exact.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None
