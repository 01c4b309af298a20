"""Errors raised by kitty-daemon-identity.

Tree (leaves also subclass the builtin they resemble, so ``except ValueError`` keeps working)::

    KittyDaemonError(Exception)
    ├── ConfigError(KittyDaemonError, ValueError)      variable, value   bad KITTY_HOME
    │   └── RangeConfigError(ConfigError)              variable, value   bad KITTY_*_PORTS
    ├── UsageError(KittyDaemonError, ValueError)       reference daemon: bad argv (exit 2)
    └── PortTaken(KittyDaemonError, OSError)           reference daemon: port in use (exit 3)

``UsageError`` and ``PortTaken`` belong to the reference daemon's command line and are not
re-exported from the package (import them from ``kitty_daemon_identity.__main__``).

Every error keeps its constructor arguments in ``args`` so it pickles across process boundaries.
No message ever contains a token or a scope key.
"""

from __future__ import annotations

__all__ = ["ConfigError", "KittyDaemonError", "PortTaken", "RangeConfigError", "UsageError"]


class KittyDaemonError(Exception):
    """Root of every error this package raises."""


class ConfigError(KittyDaemonError, ValueError):
    """A configuration value (environment variable) is unusable.

    ``variable`` names the environment variable, ``value`` is the offending value and ``reason``
    says what is wrong with it and how to fix it.
    """

    def __init__(self, variable: str, value: str, reason: str) -> None:
        super().__init__(variable, value, reason)
        self.variable = variable
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.variable}={self.value!r} is invalid: {self.reason}"


class RangeConfigError(ConfigError):
    """A ``KITTY_SYNC_PORTS`` / ``KITTY_DASHBOARD_PORTS`` override is malformed or overlapping."""


class UsageError(KittyDaemonError, ValueError):
    """The reference daemon's arguments or configuration are bad (exit 2); says what to change."""


class PortTaken(KittyDaemonError, OSError):
    """The reference daemon could bind no port (the explicit one, or any in the range): exit 3."""
