"""Where kitty keeps its runtime files (SPEC §0.2): resolved at every call, never cached.

The resolution itself is kitty-daemon-identity's ``default_home`` (one implementation, issue 12;
the app profile of issue 13 will live beside it); this package only keeps its own error type.
"""

from __future__ import annotations

import pathlib

import kitty_daemon_identity

from ._errors import ConfigError


def default_home(profile: kitty_daemon_identity.AppProfile | None = None) -> pathlib.Path:
    """``$KITTY_HOME`` if set and non-empty (``~`` expanded, must be absolute), else the default.

    The default is ``~/.kitty`` (Windows: ``%LOCALAPPDATA%\\kitty``); an app's ``profile`` has its
    own variable and default. A relative value raises this package's ``ConfigError`` (callers
    catch ``kitty_auth_refresh.ConfigError``).
    """
    try:
        return (profile or kitty_daemon_identity.KITTY).resolve_home()
    except kitty_daemon_identity.ConfigError as exc:
        raise ConfigError(exc.variable, exc.value, exc.reason) from None
