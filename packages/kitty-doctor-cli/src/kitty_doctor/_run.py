"""One run of `kitty-doctor` once its command line is parsed, without typer or click.

`main_with_args` is the whole command: the common, valid command line is parsed by `_options`
and runs from here; anything else goes to the typer command in `_cli` (help, version, errors).
Every outcome is mapped to one of the three exit codes here (DOC-10): the error envelope in
`--json` mode, one line on stderr otherwise.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from ._config import KITTY_SETUP, Config, DoctorSetup, resolve_config
from ._document import dumps, error_document, report_document
from ._errors import DoctorConfigError, KittyDoctorError, current_traceback
from ._exit import ExitCode
from ._model import Repairs, Report
from ._options import Options, fast_parse
from ._redact import Redactor
from ._terminal import terminal_safe

if TYPE_CHECKING:
    from ._review import Candidate

PROG: Final = "kitty-doctor"


class UsageProblem(KittyDoctorError):
    """A combination of options that makes no sense (exit 2)."""


class Interrupted(KittyDoctorError):
    """Ctrl-C: carried past click, which would otherwise turn it into exit 130."""


class OutputClosed(KittyDoctorError):
    """stdout's reader went away (EPIPE): carried past click, which would exit 1."""


def _is_interactive(json_mode: bool) -> bool:
    return not json_mode and sys.stdin.isatty() and sys.stdout.isatty()


def _ask(candidates: Sequence[Candidate], app: str = "kitty") -> bool:
    """The DOC-05 prompt on the terminal: each candidate's review lines (what, why, owner, age,
    root, command line), wrapped to the terminal; anything but y/yes is No, and so are ^D (end
    of input) and ^C at the prompt, which end the prompt's line cleanly instead of a
    traceback."""
    import shutil

    from ._repair import consent_question
    from ._wrap import wrap_lines

    width = shutil.get_terminal_size().columns
    out = sys.stdout
    lines = [f"{app} cannot prove these daemons are safe to stop:"]
    for head, more in candidates:
        lines += _indented(terminal_safe(head), "  - ", "    ", width)
        for text in more:
            lines += _indented(terminal_safe(text), "      ", "        ", width)
    lines += wrap_lines(f"(the daemons {app} proved safe are stopped whatever you answer)", width)
    answer = ""
    try:
        # Inside the try: a ^C that lands between the question and the read is still "No".
        out.write("\n".join(lines) + "\n" + consent_question(len(candidates), app))
        out.flush()
        answer = read_answer(sys.stdin)
    except KeyboardInterrupt:
        answer = ""
    if not answer.endswith("\n"):  # ^D or ^C: the cursor is still on the prompt line
        out.write("\n")
        out.flush()
    return answer.strip().lower() in ("y", "yes")


#: How often a wait for the answer comes back to Python, where a pending ^C is raised.
_ANSWER_POLL_S: Final = 0.1


def read_answer(stream: TextIO) -> str:
    """One line from `stream`, where ^C is never lost: the kernel may hand SIGINT to any thread
    of the process (the scan's idle workers), and then a read blocked in the main thread is
    not interrupted - Python would raise KeyboardInterrupt only after the next Enter. Waiting
    in short selects returns to Python often enough to raise it at once."""
    import select

    try:
        fd = stream.fileno()
        while not select.select([fd], [], [], _ANSWER_POLL_S)[0]:
            pass
    except (OSError, ValueError, io.UnsupportedOperation):  # not selectable (Windows, a fake)
        pass
    # The prompt's only read of stdin: nothing can sit in the stream's buffer unseen by select.
    return stream.readline()


def _indented(text: str, first: str, hanging: str, width: int) -> list[str]:
    from ._wrap import wrap_lines

    lines = wrap_lines(text, max(width - len(first), 1), max(width - len(hanging), 1))
    return [(first if i == 0 else hanging) + line for i, line in enumerate(lines)]


def _emit_human(report: Report, verbose: bool) -> None:
    from rich.console import Console

    from ._embed import render_report

    stdout = sys.stdout
    # Colour follows the real stdout (TTY or not, NO_COLOR); render_report masks every secret
    # before a byte reaches it.
    tty = stdout.isatty()
    console = Console(
        file=stdout,
        force_terminal=tty,
        no_color=bool(os.environ.get("NO_COLOR")) or not tty,
        highlight=False,
        width=None if tty else 100,
    )
    # A terminal wraps at its width (hanging indent, never inside a word); a pipe gets one line
    # per report line, for grep.
    render_report(report, console, verbose=verbose, wrap=tty)


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
    setup: DoctorSetup = KITTY_SETUP,
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
                cfg,
                force=force,
                interactive=_is_interactive(json_mode),
                ask=lambda candidates: _ask(candidates, cfg.brand.app),
            )
        unstick = run_unstick(cfg) if unstick_lock else None
        repairs = Repairs(reset=reset_block, unstick_lock=unstick)
    report = build_report(
        cfg,
        tool_version=setup.tool_version(),
        packages=setup.package_versions(),
        redactor=redactor,
        repairs=repairs,
    )
    if json_mode:
        _emit_json(report, redactor)
    else:
        _emit_human(report, verbose)
    if verbose:
        _emit_tracebacks(report, redactor)
    return report.exit_code


def execute(
    opts: Options, *, redactor: Redactor | None = None, setup: DoctorSetup = KITTY_SETUP
) -> int:
    """Validate what only the doctor can judge, resolve the configuration, run."""
    if (opts.force or opts.yes) and not opts.reset:
        raise UsageProblem("--force/--yes only make sense with --reset")
    home = opts.home
    if home is not None and not home.strip():
        raise DoctorConfigError("--home", home, "give a directory path, or omit --home")
    cfg = resolve_config(
        home=None if home is None else Path(home),
        family=opts.family,
        stuck_threshold_s=opts.stuck_threshold,
        expected_daemon_version=opts.expected_daemon_version,
        login_command=opts.login_command,
        profile=setup.profile,
        tool=setup.tool,
        texts=setup.texts,
    )
    return run(
        cfg,
        setup=setup,
        redactor=redactor,
        json_mode=opts.json_mode,
        reset=opts.reset,
        force=opts.force or opts.yes,
        unstick_lock=opts.unstick_lock,
        verbose=opts.verbose,
    )


VERBOSE_HINT: Final = "re-run with --verbose for details"


def usage_hint(prog: str) -> str:
    # --verbose adds nothing to a usage error (there is no traceback worth showing): --help does.
    return f"see {prog} --help"


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
    prog: str = PROG,
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
            f"{prog}: {terminal_safe(message)}" + ("" if shown is None else f" ({shown})") + "\n"
        )
    if verbose and tb:
        stderr.write(terminal_safe(tb, multiline=True))
    return int(ExitCode.ERROR)


def _interrupted(json_mode: bool, stderr: TextIO, prog: str) -> int:
    # The user pressed Ctrl-C: there are no details a --verbose re-run could add.
    return _fail(
        "interrupted",
        "interrupted",
        json_mode=json_mode,
        verbose=False,
        stderr=stderr,
        tb=None,
        hint=None,
        prog=prog,
    )


def guarded(
    call: Callable[[], int],
    *,
    json_mode: bool,
    verbose: bool,
    redactor: Redactor,
    prog: str = PROG,
) -> int:
    """`call()`'s exit code, with every exception it raises mapped to exit code 2 (DOC-10);
    `prog` (the doctor command) starts every message."""
    stderr = sys.stderr
    try:
        return call()
    except UsageProblem as exc:
        return _fail(
            "usage_error",
            str(exc),
            json_mode=json_mode,
            verbose=False,
            stderr=stderr,
            tb=None,
            hint=usage_hint(prog),
            prog=prog,
        )
    except DoctorConfigError as exc:
        return _fail(
            "config_error",
            str(exc),
            json_mode=json_mode,
            verbose=verbose,
            stderr=stderr,
            tb=current_traceback(),
            hint=usage_hint(prog),
            prog=prog,
        )
    except (OutputClosed, BrokenPipeError):
        # The reader went away (`kitty-doctor | head -1`): nothing more can reach stdout, and
        # Python's exit-time flush must not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        stderr.write(f"{prog}: output closed before the report was complete\n")
        return int(ExitCode.ERROR)
    except (Interrupted, KeyboardInterrupt):
        return _interrupted(json_mode, stderr, prog)
    except Exception as exc:
        return _fail(
            "internal_error",
            f"internal error: {type(exc).__name__}: {exc}",
            json_mode=json_mode,
            verbose=verbose,
            stderr=stderr,
            tb=current_traceback(),
            redactor=redactor,
            prog=prog,
        )


def main_with_args(args: Sequence[str]) -> int:
    """Parse `args`, run kitty's own doctor, and return the exit code (0, 1 or 2); never
    raises."""
    opts = fast_parse(args)
    if opts is None:
        from ._cli import click_main

        return click_main(args)
    redactor = Redactor()
    parsed = opts
    return guarded(
        lambda: execute(parsed, redactor=redactor),
        json_mode=opts.json_mode,
        verbose=opts.verbose,
        redactor=redactor,
    )
