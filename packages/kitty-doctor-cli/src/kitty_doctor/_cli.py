"""The `kitty-doctor` command: option parsing (typer), repairs, report, output, exit code.

click runs in non-standalone mode and every outcome is mapped here (DOC-10): click's own codes
(1 for an uncaught exception, 130 for Ctrl-C) never reach the shell.
"""

from __future__ import annotations

import io
import os
import sys
import traceback
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, TextIO

import typer

from . import __version__
from ._config import Config, package_versions, resolve_config
from ._document import dumps, error_document, report_document
from ._errors import DoctorConfigError, KittyDoctorError
from ._exit import ExitCode
from ._model import DEFAULT_STUCK_THRESHOLD_S, Repairs, Report
from ._redact import Redactor
from ._terminal import terminal_safe

#: One prompt candidate: its headline and its review lines (kitty_doctor._review).
Candidate = tuple[str, tuple[str, ...]]

PROG: Final = "kitty-doctor"


class FamilyChoice(StrEnum):
    SYNC = "sync"
    DASHBOARD = "dashboard"
    ALL = "all"


class UsageProblem(KittyDoctorError):
    """A combination of options that makes no sense (exit 2)."""


class Interrupted(KittyDoctorError):
    """Ctrl-C: carried past click, which would otherwise turn it into exit 130."""


class OutputClosed(KittyDoctorError):
    """stdout's reader went away (EPIPE): carried past click, which would exit 1."""


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


def _is_interactive(json_mode: bool) -> bool:
    return not json_mode and sys.stdin.isatty() and sys.stdout.isatty()


def _ask(candidates: Sequence[Candidate]) -> bool:
    """The DOC-05 prompt on the terminal: each candidate's review lines (what, why, owner, age,
    root, command line), wrapped to the terminal; anything but y/yes is No, and so are ^D (end
    of input) and ^C at the prompt, which end the prompt's line cleanly instead of a
    traceback."""
    import shutil

    from ._repair import consent_question
    from ._wrap import wrap_lines

    width = shutil.get_terminal_size().columns
    out = sys.stdout
    lines = ["kitty cannot prove these daemons are safe to stop:"]
    for head, more in candidates:
        lines += _indented(terminal_safe(head), "  - ", "    ", width)
        for text in more:
            lines += _indented(terminal_safe(text), "      ", "        ", width)
    lines += wrap_lines("(the daemons kitty proved safe are stopped whatever you answer)", width)
    answer = ""
    try:
        # Inside the try: a ^C that lands between the question and the read is still "No".
        out.write("\n".join(lines) + "\n" + consent_question(len(candidates)))
        out.flush()
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not answer.endswith("\n"):  # ^D or ^C: the cursor is still on the prompt line
        out.write("\n")
        out.flush()
    return answer.strip().lower() in ("y", "yes")


def _indented(text: str, first: str, hanging: str, width: int) -> list[str]:
    from ._wrap import wrap_lines

    lines = wrap_lines(text, max(width - len(first), 1), max(width - len(hanging), 1))
    return [(first if i == 0 else hanging) + line for i, line in enumerate(lines)]


def _emit_human(report: Report, redactor: Redactor, verbose: bool) -> None:
    from rich.console import Console

    stdout = sys.stdout
    buffer = io.StringIO()
    # Render into a buffer so the redactor sees every byte before the terminal does; colour
    # decisions still follow the real stdout (TTY or not, NO_COLOR).
    tty = stdout.isatty()
    console = Console(
        file=buffer,
        force_terminal=tty,
        no_color=bool(os.environ.get("NO_COLOR")) or not tty,
        highlight=False,
        width=None if tty else 100,
    )
    from ._render import render

    # A terminal wraps at its width (hanging indent, never inside a word); a pipe gets one line
    # per report line, for grep.
    render(report, console, verbose=verbose, width=console.width if tty else None)
    stdout.write(redactor.scrub(buffer.getvalue()))
    stdout.flush()


def _emit_tracebacks(report: Report, redactor: Redactor) -> None:
    """`--verbose`: a crashed section's traceback goes to stderr (stdout stays the report)."""
    for section in report.sections:
        if section.traceback:
            sys.stderr.write(terminal_safe(redactor.scrub(section.traceback), multiline=True))


def _emit_json(report: Report, redactor: Redactor) -> None:
    sys.stdout.write(redactor.scrub(dumps(report_document(report))) + "\n")
    sys.stdout.flush()


def run(
    cfg: Config,
    *,
    json_mode: bool,
    reset: bool,
    force: bool,
    unstick_lock: bool,
    verbose: bool,
    redactor: Redactor | None = None,
) -> int:
    from ._report import build_report

    # The caller's redactor, so that a fatal error after the tokens were read is masked too.
    redactor = redactor if redactor is not None else Redactor()
    repairs = Repairs()
    if reset or unstick_lock:
        from ._repair import run_reset, run_unstick

        reset_block = None
        if reset:
            reset_block = run_reset(
                cfg, force=force, interactive=_is_interactive(json_mode), ask=_ask
            )
        unstick = run_unstick(cfg) if unstick_lock else None
        repairs = Repairs(reset=reset_block, unstick_lock=unstick)
    report = build_report(
        cfg,
        tool_version=__version__,
        packages=package_versions(),
        redactor=redactor,
        repairs=repairs,
    )
    if json_mode:
        _emit_json(report, redactor)
    else:
        _emit_human(report, redactor, verbose)
    if verbose:
        _emit_tracebacks(report, redactor)
    return report.exit_code


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
    if (force or yes) and not reset:
        raise UsageProblem("--force/--yes only make sense with --reset")
    if home is not None and not home.strip():
        raise DoctorConfigError("--home", home, "give a directory path, or omit --home")
    cfg = resolve_config(
        home=None if home is None else Path(home),
        family=family.value,
        stuck_threshold_s=stuck_threshold,
        expected_daemon_version=expected_daemon_version,
        login_command=login_command,
    )
    try:
        return run(
            cfg,
            redactor=ctx.obj if isinstance(ctx.obj, Redactor) else None,
            json_mode=json_mode,
            reset=reset,
            force=force or yes,
            unstick_lock=unstick_lock,
            verbose=verbose,
        )
    except KeyboardInterrupt:
        raise Interrupted("interrupted") from None
    except BrokenPipeError:
        # Not an OSError past this point: click would turn EPIPE into its own exit code 1.
        raise OutputClosed("stdout closed") from None


VERBOSE_HINT: Final = "re-run with --verbose for details"
# --verbose adds nothing to a usage error (there is no traceback worth showing): point at --help.
USAGE_HINT: Final = f"see {PROG} --help"


def _fail(
    kind: str,
    message: str,
    *,
    json_mode: bool,
    verbose: bool,
    stderr: TextIO,
    tb: str | None,
    hint: str | None = VERBOSE_HINT,
    redactor: Redactor | None = None,
) -> int:
    # DOC-11: an exception raised after the session was read may quote a token.
    if redactor is not None:
        message = redactor.scrub(message)
        tb = None if tb is None else redactor.scrub(tb)
    if json_mode:
        sys.stdout.write(dumps(error_document(kind, message)) + "\n")
        sys.stdout.flush()
    else:
        # --verbose prints the traceback below: never also ask for a --verbose re-run.
        shown = None if verbose and hint == VERBOSE_HINT else hint
        stderr.write(
            f"{PROG}: {terminal_safe(message)}" + ("" if shown is None else f" ({shown})") + "\n"
        )
    if verbose and tb:
        stderr.write(terminal_safe(tb, multiline=True))
    return int(ExitCode.ERROR)


def _interrupted(json_mode: bool, stderr: TextIO) -> int:
    # The user pressed Ctrl-C: there are no details a --verbose re-run could add.
    return _fail(
        "interrupted",
        "interrupted",
        json_mode=json_mode,
        verbose=False,
        stderr=stderr,
        tb=None,
        hint=None,
    )


def main_with_args(args: Sequence[str]) -> int:
    """Parse `args`, run, and return the exit code; never raises (except SystemExit from
    nothing: every path returns one of ExitCode)."""
    argv = list(args)
    json_mode = "--json" in argv
    verbose = "--verbose" in argv
    stderr = sys.stderr
    command = typer.main.get_command(app)
    redactor = Redactor()
    try:
        rv: Any = command.main(args=argv, prog_name=PROG, standalone_mode=False, obj=redactor)
    except typer.TyperException as exc:  # click's usage errors (bad option, bad value)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return _fail(
            "usage_error",
            message,
            json_mode=json_mode,
            verbose=False,
            stderr=stderr,
            tb=None,
            hint=USAGE_HINT,
        )
    except UsageProblem as exc:
        return _fail(
            "usage_error",
            str(exc),
            json_mode=json_mode,
            verbose=False,
            stderr=stderr,
            tb=None,
            hint=USAGE_HINT,
        )
    except DoctorConfigError as exc:
        return _fail(
            "config_error",
            str(exc),
            json_mode=json_mode,
            verbose=verbose,
            stderr=stderr,
            tb=traceback.format_exc(),
            hint=USAGE_HINT,
        )
    except SystemExit as exc:
        # click exits by itself in one place even in non-standalone mode (EPIPE while printing
        # --help: exit 1); only ever 0 or 2 leave this function.
        return int(ExitCode.OK) if exc.code in (0, None) else int(ExitCode.ERROR)
    except OutputClosed:
        # The reader went away (`kitty-doctor | head -1`): nothing more can reach stdout, and
        # Python's exit-time flush must not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        stderr.write(f"{PROG}: output closed before the report was complete\n")
        return int(ExitCode.ERROR)
    except (Interrupted, KeyboardInterrupt, typer.Abort):
        return _interrupted(json_mode, stderr)
    except Exception as exc:
        return _fail(
            "internal_error",
            f"internal error: {type(exc).__name__}: {exc}",
            json_mode=json_mode,
            verbose=verbose,
            stderr=stderr,
            tb=traceback.format_exc(),
            redactor=redactor,
        )
    if rv is None:
        return int(ExitCode.OK)
    code = int(rv)
    if code in (0, 1, 2):
        return code
    # typer turns Ctrl-C during parsing into Exit(130); anything unexpected is an error.
    return _interrupted(json_mode, stderr)
