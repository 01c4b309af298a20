"""Process exit codes (DOC-10)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The only three codes `kitty-doctor` ever exits with.

    click's own codes (1 for an uncaught exception, 130 for Ctrl-C) are never passed through:
    the shell in `_cli.py` maps every outcome onto one of these.
    """

    OK = 0
    """No critical finding remains (after repairs, when any ran)."""
    CRITICAL = 1
    """At least one critical finding remains."""
    ERROR = 2
    """Usage or configuration error, internal error, interrupt, or a crashed section."""
