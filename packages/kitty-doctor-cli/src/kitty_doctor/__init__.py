"""kitty-doctor-cli: the `kitty-doctor` command.

One offline, read-only command that explains kitty's local state — session, storage, refresh
lock, daemons and orphans — with stable finding IDs (KD101-KD901), exact remediation commands and
opt-in repairs (`--reset`, `--unstick-lock`). `--json` prints one document validated by the JSON
Schema shipped as `kitty_doctor/schema/doctor-report.schema.json`.

This module stays import-light: the CLI machinery loads only when `kitty-doctor` runs.
"""

from __future__ import annotations

from kitty_filelock import installed_version

# Read cheaply by kitty-filelock: importing importlib.metadata would cost more than this package.
__version__: str = installed_version("kitty-doctor-cli") or "0.0.0+unknown"

__all__ = ["__version__"]
