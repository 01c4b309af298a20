"""This distribution's version (one lookup, shared by ``__version__`` and kitty's app profile)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("kitty-daemon-identity")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0+unknown"
