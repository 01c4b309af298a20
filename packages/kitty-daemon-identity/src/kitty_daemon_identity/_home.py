"""Resolution of the kitty home and the daemon root (SPEC §0.2, DID-03)."""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import ConfigError

__all__ = ["daemon_root", "default_home"]


def default_home() -> Path:
    """``$KITTY_HOME`` if set and non-empty (after ``~`` expansion), else ``~/.kitty``.

    On Windows the default is ``%LOCALAPPDATA%\\kitty``. Re-read at every call, never cached,
    so tests and embedding apps can change the environment after import.
    """
    raw = os.environ.get("KITTY_HOME", "")
    if raw:
        # os.path.expanduser leaves `~nosuchuser/...` as is (then refused below as relative);
        # Path.expanduser would raise a bare RuntimeError instead of a ConfigError.
        home = Path(os.path.expanduser(raw))
        if not home.is_absolute():
            raise ConfigError(
                "KITTY_HOME", raw, "it must be an absolute path (e.g. /home/you/.kitty) or unset"
            )
        return home
    if os.name == "nt":  # pragma: no cover - exercised on Windows CI only
        local = os.environ.get("LOCALAPPDATA", "")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
        return base / "kitty"
    return Path.home() / ".kitty"


def daemon_root(home: Path | None = None) -> Path:
    """``(home / "daemon").resolve()``; the resolved path is the root-marker value."""
    base = default_home() if home is None else Path(home)
    return (base / "daemon").resolve()
