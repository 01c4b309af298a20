"""kitty-orphan-sweep: scan, sweep and reuse-or-spawn for kitty daemons.

Not implemented yet: this release holds only the package metadata.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("kitty-orphan-sweep")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
