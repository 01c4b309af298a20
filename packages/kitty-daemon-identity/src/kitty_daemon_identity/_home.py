"""Resolution of the kitty home and the daemon root (SPEC §0.2, DID-03).

``default_home`` is the one implementation in kitty (issue 12): kitty-auth-refresh's
``default_home`` calls it; the app profile of issue 13 will grow from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from ._errors import ConfigError

__all__ = ["daemon_root", "default_home"]

HOME_ENV: Final = "KITTY_HOME"
# Read through a variable so the Windows branch is testable (and type-checked) everywhere.
_OS_NAME: str = os.name


def default_home() -> Path:
    """``$KITTY_HOME`` if set and non-empty (after ``~`` expansion), else ``~/.kitty``.

    On Windows the default is ``%LOCALAPPDATA%\\kitty`` (``~\\AppData\\Local\\kitty`` when
    ``LOCALAPPDATA`` is unset). Re-read at every call, never cached, so tests and embedding apps
    can change the environment after import. A relative value is a ``ConfigError``.
    """
    raw = os.environ.get(HOME_ENV, "")
    if raw:
        # os.path.expanduser leaves `~nosuchuser/...` as is (then refused below as relative);
        # Path.expanduser would raise a bare RuntimeError instead of a ConfigError.
        home = Path(os.path.expanduser(raw))
        if not home.is_absolute():
            raise ConfigError(
                HOME_ENV, raw, "it must be an absolute path (e.g. /home/you/.kitty) or unset"
            )
        return home
    if _OS_NAME == "nt":
        local = os.environ.get("LOCALAPPDATA", "")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
        return base / "kitty"
    return Path.home() / ".kitty"


def daemon_root(home: Path | None = None) -> Path:
    """``(home / "daemon").resolve()``; the resolved path is the root-marker value."""
    base = default_home() if home is None else Path(home)
    return (base / "daemon").resolve()
