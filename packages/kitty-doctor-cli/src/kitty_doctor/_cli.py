"""The `kitty-doctor` typer command: `--help`, `--version`, and every command line the fast
parser in `_options` leaves to click (with click's own error messages).

click runs in non-standalone mode and every outcome is mapped by `_run.guarded` (DOC-10): click's
own codes (1 for an uncaught exception, 130 for Ctrl-C) never reach the shell.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Final

import typer

from . import __version__
from ._config import package_versions
from ._exit import ExitCode
from ._model import DEFAULT_STUCK_THRESHOLD_S
from ._options import Options
from ._redact import Redactor
from ._run import (
    PROG,
    Interrupted,
    OutputClosed,
    UsageProblem,
    execute,
    guarded,
    main_with_args,
)

__all__ = ["app", "click_main", "main_with_args"]


class FamilyChoice(StrEnum):
    SYNC = "sync"
    DASHBOARD = "dashboard"
    ALL = "all"


def _print_versions(value: bool) -> None:
    if not value:
        return
    versions = package_versions()
    lines = [f"{PROG} {__version__}"] + [f"{name} {v}" for name, v in versions.items()]
    try:
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise OutputClosed("stdout closed") from None
    raise typer.Exit(0)


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


_EPILOG: Final = (
    "Exit codes: 0 nothing critical; 1 at least one critical finding; 2 the doctor could not run"
    " (bad option, internal error).\n\n"
    "Environment: KITTY_HOME (the home, default ~/.kitty), KITTY_SYNC_PORTS and"
    " KITTY_DASHBOARD_PORTS (half-open port ranges START-STOP, e.g. 9400-9450), KITTY_LOGIN_COMMAND"
    " (shown in remediations), NO_COLOR (plain output)."
)


@app.command(
    help="Explain kitty's local state (offline, read-only) and optionally repair it.",
    epilog=_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
def doctor(
    ctx: typer.Context,
    home: Annotated[
        # str, not Path: Path("") is Path("."), and an empty --home (an unset shell variable)
        # must be refused rather than silently inspecting the current directory.
        str | None,
        typer.Option(
            "--home", metavar="PATH", help="kitty home (default: $KITTY_HOME or ~/.kitty)"
        ),
    ] = None,
    family: Annotated[
        FamilyChoice, typer.Option("--family", help="daemon family to inspect")
    ] = FamilyChoice.ALL,
    json_mode: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
    reset: Annotated[
        bool, typer.Option("--reset", help="stop orphan daemons kitty can prove safe, then report")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="with --reset: also stop daemons needing consent")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="same as --force")] = False,
    unstick_lock: Annotated[
        bool, typer.Option("--unstick-lock", help="clear a stale refresh-lock record")
    ] = False,
    stuck_threshold: Annotated[
        float,
        typer.Option("--stuck-threshold", metavar="S", help="seconds before a held lock is stuck"),
    ] = DEFAULT_STUCK_THRESHOLD_S,
    login_command: Annotated[
        str | None,
        typer.Option(
            "--login-command",
            metavar="CMD",
            help="login command shown in remediations (default: $KITTY_LOGIN_COMMAND)",
        ),
    ] = None,
    expected_daemon_version: Annotated[
        str | None,
        typer.Option(
            "--expected-daemon-version",
            metavar="V",
            help="daemon version to expect (default: installed kitty-daemon-identity)",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="more detail and tracebacks")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_versions, help="print all versions"
        ),
    ] = False,
) -> int:
    opts = Options(
        home=home,
        family=family.value,
        json_mode=json_mode,
        reset=reset,
        force=force,
        yes=yes,
        unstick_lock=unstick_lock,
        stuck_threshold=stuck_threshold,
        login_command=login_command,
        expected_daemon_version=expected_daemon_version,
        verbose=verbose,
    )
    try:
        return execute(opts, redactor=ctx.obj if isinstance(ctx.obj, Redactor) else None)
    except KeyboardInterrupt:
        raise Interrupted("interrupted") from None
    except BrokenPipeError:
        # Not an OSError past this point: click would turn EPIPE into its own exit code 1.
        raise OutputClosed("stdout closed") from None


def click_main(args: Sequence[str]) -> int:
    """What `_options` does not parse, parsed by click (help, version, every error message);
    the exit code mapping is `_run`'s."""
    argv = list(args)
    json_mode = "--json" in argv
    command = typer.main.get_command(app)
    redactor = Redactor()

    def call() -> int:
        try:
            rv: Any = command.main(args=argv, prog_name=PROG, standalone_mode=False, obj=redactor)
        except typer.TyperException as exc:  # click's usage errors (bad option, bad value)
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            raise UsageProblem(message) from None
        except SystemExit as exc:
            # click exits by itself in one place even in non-standalone mode (EPIPE while
            # printing --help: exit 1); only ever 0 or 2 leave this function.
            return int(ExitCode.OK) if exc.code in (0, None) else int(ExitCode.ERROR)
        except typer.Abort:
            raise Interrupted("interrupted") from None
        if rv is None:
            return int(ExitCode.OK)
        code = int(rv)
        if code in (0, 1, 2):
            return code
        # typer turns Ctrl-C during parsing into Exit(130); anything unexpected is an error.
        raise Interrupted("interrupted")

    return guarded(call, json_mode=json_mode, verbose="--verbose" in argv, redactor=redactor)
