"""Errors raised by kitty-daemon-identity.

Tree (leaves also subclass the builtin they resemble, so ``except ValueError`` keeps working)::

    KittyDaemonError(Exception)
    └── ConfigError(KittyDaemonError, ValueError)      variable, value   bad KITTY_HOME
        └── RangeConfigError(ConfigError)              variable, value   bad KITTY_*_PORTS

Every error keeps its constructor arguments in ``args`` so it pickles across process boundaries.
No message ever contains a token or a scope key.
"""

from __future__ import annotations

__all__ = ["ConfigError", "KittyDaemonError", "RangeConfigError"]


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
