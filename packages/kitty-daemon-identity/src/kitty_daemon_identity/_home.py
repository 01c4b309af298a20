"""Where an application's home is (SPEC §0.2): an explicit path, an environment variable, a default.

The one implementation in kitty (issue 12) of "which directory is the home"; an ``AppProfile``
(``_profile.py``) supplies the names, kitty's own profile ``KITTY_HOME`` and ``~/.kitty``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import ConfigError

__all__ = ["resolve_home"]

# Read through a variable so the Windows branch is testable (and type-checked) everywhere.
_OS_NAME: str = os.name


def resolve_home(variable: str | None, dirname: str, fallback: Path | None = None) -> Path:
    """``$variable`` if set and non-empty (after ``~`` expansion), else the default home.

    The default is ``fallback`` when given, else ``~/.<dirname>`` (``%LOCALAPPDATA%\\<dirname>``
    on Windows, ``~\\AppData\\Local\\<dirname>`` when ``LOCALAPPDATA`` is unset). Re-read at every
    call, never cached, so tests and embedding apps can change the environment after import. A
    relative value is a ``ConfigError`` naming the variable.
    """
    raw = os.environ.get(variable, "") if variable else ""
    if raw and variable:
        # os.path.expanduser leaves `~nosuchuser/...` as is (then refused below as relative);
        # Path.expanduser would raise a bare RuntimeError instead of a ConfigError.
        home = Path(os.path.expanduser(raw))
        if not home.is_absolute():
            raise ConfigError(
                variable,
                raw,
                f"it must be an absolute path (e.g. /home/you/.{dirname}) or unset",
            )
        return home
    if fallback is not None:
        return Path(fallback)
    if _OS_NAME == "nt":
        local = os.environ.get("LOCALAPPDATA", "")
        base = Path(local) if local else Path.home() / "AppData" / "Local"
        return base / dirname
    return Path.home() / f".{dirname}"
