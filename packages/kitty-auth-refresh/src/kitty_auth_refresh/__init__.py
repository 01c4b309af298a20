"""kitty-auth-refresh: the locked refresh transaction and compare-then-clear reconciler.

Not implemented yet: this release holds only the package metadata.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("kitty-auth-refresh")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
