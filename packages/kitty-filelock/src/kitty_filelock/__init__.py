"""kitty-filelock: a machine-wide, crash-safe file lock with an inspectable holder record.

Zero runtime dependencies. See the package README for guarantees per filesystem.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("kitty-filelock")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
