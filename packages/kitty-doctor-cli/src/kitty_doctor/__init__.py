"""kitty-doctor-cli: the `kitty-doctor` command.

One offline, read-only command that explains kitty's local state — session, storage, refresh
lock, daemons and orphans — with stable finding IDs (KD101-KD901), exact remediation commands and
opt-in repairs (`--reset`, `--unstick-lock`). `--json` prints one document validated by the JSON
Schema shipped as `kitty_doctor/schema/doctor-report.schema.json`.

This module stays import-light: the CLI machinery loads only when `kitty-doctor` runs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("kitty-doctor-cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
