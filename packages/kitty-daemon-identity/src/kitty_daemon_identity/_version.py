"""This distribution's version (one lookup, shared by ``__version__`` and kitty's app profile)."""

from __future__ import annotations

from kitty_filelock import installed_version

__all__ = ["__version__"]

# Read cheaply by kitty-filelock: importing importlib.metadata would cost more than this package.
__version__: str = installed_version("kitty-daemon-identity") or "0.0.0+unknown"
