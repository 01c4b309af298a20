"""Where kitty keeps its runtime files (SPEC §0.2): resolved at every call, never cached."""

from __future__ import annotations

import os
import pathlib
from typing import Final

from ._errors import ConfigError

HOME_ENV: Final = "KITTY_HOME"


def default_home() -> pathlib.Path:
    """``$KITTY_HOME`` if set and non-empty (``~`` expanded, must be absolute), else the default.

    The default is ``~/.kitty`` (Windows: ``%LOCALAPPDATA%\\kitty``). Read on every call so tests
    and embedding apps may change the environment after import.
    """
    raw = os.environ.get(HOME_ENV, "")
    if raw:
        path = pathlib.Path(os.path.expanduser(raw))
        if not path.is_absolute():
            raise ConfigError(
                HOME_ENV, raw, "set it to an absolute path (e.g. /home/me/.kitty) or unset it"
            )
        return path
    local_app_data = os.environ.get("LOCALAPPDATA", "")
    if os.name == "nt" and local_app_data:  # pragma: no cover - Windows only
        return pathlib.Path(local_app_data) / "kitty"
    return pathlib.Path.home() / ".kitty"
