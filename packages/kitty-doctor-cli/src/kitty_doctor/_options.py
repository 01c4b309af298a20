"""The options of one run, and the parser that spares a valid command line typer and click.

Importing typer (and click under it) is a quarter of a cold `kitty-doctor --json` (DOC-13,
issue 15). So a command line made only of this table's options, spelled exactly, is parsed here;
anything else — `-h`/`--help`, `--version`, a typo, a bad value, a value that looks like an
option — returns None and the typer command in `_cli` parses it, with click's own messages. A
test holds this table and the typer command to the same options and the same values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from kitty_filelock import frozen_dataclass

from ._model import DEFAULT_STUCK_THRESHOLD_S

FAMILY_CHOICES: Final = ("sync", "dashboard", "all")


@frozen_dataclass
class Options:
    """What the command line asked for (before any validation of the values' meaning)."""

    home: str | None = None
    family: str = "all"
    json_mode: bool = False
    reset: bool = False
    force: bool = False
    yes: bool = False
    unstick_lock: bool = False
    stuck_threshold: float = DEFAULT_STUCK_THRESHOLD_S
    login_command: str | None = None
    expected_daemon_version: str | None = None
    verbose: bool = False


#: Flags (no value) and value options, by option name -> `Options` field.
FLAGS: Final = {
    "--json": "json_mode",
    "--reset": "reset",
    "--force": "force",
    "--yes": "yes",
    "--unstick-lock": "unstick_lock",
    "--verbose": "verbose",
}
VALUES: Final = {
    "--home": "home",
    "--family": "family",
    "--stuck-threshold": "stuck_threshold",
    "--login-command": "login_command",
    "--expected-daemon-version": "expected_daemon_version",
}


def _convert(field: str, value: str) -> str | float | None:
    if field == "family":
        return value if value in FAMILY_CHOICES else None
    if field == "stuck_threshold":
        try:
            return float(value)  # what click's FLOAT does; the meaning is checked later
        except ValueError:
            return None
    return value


def fast_parse(argv: Sequence[str]) -> Options | None:
    """`Options` for a command line of known options only, else None (let click parse it)."""
    values: dict[str, object] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        name, eq, inline = args[i].partition("=")
        if name in FLAGS and not eq:
            values[FLAGS[name]] = True
        elif name in VALUES:
            if eq:
                value = inline
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                i += 1
                value = args[i]
            else:
                return None  # a missing value, or one click's own rules should judge
            converted = _convert(VALUES[name], value)
            if converted is None:
                return None
            values[VALUES[name]] = converted
        else:
            return None
        i += 1
    return Options(**values)  # type: ignore[arg-type]  # each field's type follows its table
