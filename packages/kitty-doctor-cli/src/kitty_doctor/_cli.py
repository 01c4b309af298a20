"""The doctor's typer command: kitty's own `kitty-doctor` (`--help`, `--version`, and every
command line the fast parser in `_options` leaves to click), and `doctor_app(profile)`, the same
command as a typer app another CLI mounts (`add_typer(doctor_app(ACME), name="doctor")`).

click runs kitty's own command in non-standalone mode and every outcome is mapped by
`_run.guarded` (DOC-10): click's own codes (1 for an uncaught exception, 130 for Ctrl-C) never
reach the shell. A mounted doctor maps its own outcomes the same way and leaves with
`typer.Exit(code)`, so the host's exit code is the doctor's.

No `from __future__ import annotations` here: the options' help names the app, so the command
is built per app and typer must see its annotations as objects, not strings.
"""

import sys
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from typer.core import TyperGroup

from ._config import KITTY_SETUP, DoctorSetup, brand_of
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

if TYPE_CHECKING:
    from kitty_daemon_identity import AppProfile

__all__ = ["app", "click_main", "doctor_app", "main_with_args"]


def _versions(setup: DoctorSetup) -> Callable[[bool], None]:
    def print_versions(value: bool) -> None:
        if not value:
            return
        lines = [f"{setup.tool} {setup.tool_version()}"] + [
            f"{name} {v}" for name, v in setup.package_versions().items()
        ]
        try:
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            raise OutputClosed("stdout closed") from None
        raise typer.Exit(0)

    return print_versions


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _help_texts(profile: "AppProfile", tool: str) -> dict[str, str]:
    """The help of `profile`'s doctor in its own words: its name, variables and default home
    (kitty's reproduce `kitty-doctor --help` exactly)."""
    brand = brand_of(profile, tool)
    app = brand.app
    if profile.home is not None:
        home_help = f"{app} home (default: {profile.home})"
        home_env = f"the home is {profile.home}"
    else:
        default = str(profile.home_default) if profile.home_default else f"~/.{app}"
        home_help = f"{app} home (default: ${brand.home_env} or {default})"
        home_env = f"{brand.home_env} (the home, default {default})"
    first = profile.families[0].ports
    ranges = _and([f.range_variable for f in profile.families])
    example = f"{first.start}-{first.stop}"
    return {
        "help": f"Explain {app}'s local state (offline, read-only) and optionally repair it.",
        "epilog": (
            "Exit codes: 0 nothing critical; 1 at least one critical finding; 2 the doctor could"
            " not run (bad option, internal error).\n\n"
            f"Environment: {home_env}, {ranges} (half-open port ranges START-STOP, e.g."
            f" {example}), {brand.login_env} (shown in remediations), NO_COLOR (plain output)."
        ),
        "home": home_help,
        "reset": f"stop orphan daemons {app} can prove safe, then report",
        "login": f"login command shown in remediations (default: ${brand.login_env})",
        "version": (
            "daemon version to expect (default: installed kitty-daemon-identity)"
            if app == "kitty"
            else "daemon version to expect (default: each family's own version)"
        ),
    }


def _command(setup: DoctorSetup, profile: "AppProfile", *, mounted: bool) -> Callable[..., int]:
    """The doctor command of `setup`. kitty's own returns the exit code and lets exceptions
    propagate to `click_main`, which maps them; a `mounted` one maps them itself (`guarded`)
    and leaves with `typer.Exit(code)`, since the host's click owns the process."""
    texts = _help_texts(profile, setup.tool)
    # An enum, as typer shows and checks choices best: `--family <sync|dashboard|all>`.
    names = [f.name for f in profile.families] + ["all"]
    Families = StrEnum("Families", {name.upper().replace("-", "_"): name for name in names})  # type: ignore[misc]
    every_family = Families("all")

    def doctor(
        ctx: typer.Context,
        home: Annotated[
            # str, not Path: Path("") is Path("."), and an empty --home (an unset shell
            # variable) must be refused rather than silently inspecting the current directory.
            str | None,
            typer.Option("--home", metavar="PATH", help=texts["home"]),
        ] = None,
        family: Annotated[
            Families, typer.Option("--family", help="daemon family to inspect")
        ] = every_family,
        json_mode: Annotated[
            bool, typer.Option("--json", help="one JSON document on stdout")
        ] = False,
        reset: Annotated[bool, typer.Option("--reset", help=texts["reset"])] = False,
        force: Annotated[
            bool, typer.Option("--force", help="with --reset: also stop daemons needing consent")
        ] = False,
        yes: Annotated[bool, typer.Option("--yes", help="same as --force")] = False,
        unstick_lock: Annotated[
            bool, typer.Option("--unstick-lock", help="clear a stale refresh-lock record")
        ] = False,
        stuck_threshold: Annotated[
            float,
            typer.Option(
                "--stuck-threshold", metavar="S", help="seconds before a held lock is stuck"
            ),
        ] = DEFAULT_STUCK_THRESHOLD_S,
        login_command: Annotated[
            str | None,
            typer.Option("--login-command", metavar="CMD", help=texts["login"]),
        ] = None,
        expected_daemon_version: Annotated[
            str | None,
            typer.Option("--expected-daemon-version", metavar="V", help=texts["version"]),
        ] = None,
        verbose: Annotated[
            bool, typer.Option("--verbose", help="more detail and tracebacks")
        ] = False,
        version: Annotated[
            bool,
            typer.Option(
                "--version", is_eager=True, callback=_versions(setup), help="print all versions"
            ),
        ] = False,
    ) -> int:
        opts = Options(
            home=home,
            family=str(family.value),
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
        if mounted:
            own = Redactor()
            code = guarded(
                lambda: execute(opts, redactor=own, setup=setup),
                json_mode=json_mode,
                verbose=verbose,
                redactor=own,
                prog=setup.tool,
            )
            raise typer.Exit(code)
        redactor = ctx.obj if isinstance(ctx.obj, Redactor) else None
        try:
            return execute(opts, redactor=redactor, setup=setup)
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except BrokenPipeError:
            # Not an OSError past this point: click would turn EPIPE into its own exit code 1.
            raise OutputClosed("stdout closed") from None

    doctor.__doc__ = texts["help"]
    return doctor


_CONTEXT: Final = {"help_option_names": ["-h", "--help"]}


class _Leaf(TyperGroup):
    """A mounted doctor is a typer group (so `add_typer` puts it at `acme auth doctor`, not at
    `acme auth doctor doctor`) without commands: its usage line shows no COMMAND."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # typer's own click Context
        return [self.options_metavar] if self.options_metavar else []


def _kitty_app() -> typer.Typer:
    from kitty_daemon_identity import KITTY

    kitty = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
    texts = _help_texts(KITTY, PROG)
    kitty.command(help=texts["help"], epilog=texts["epilog"], context_settings=_CONTEXT)(
        _command(KITTY_SETUP, KITTY, mounted=False)
    )
    return kitty


#: kitty's own `kitty-doctor` command.
app = _kitty_app()


def doctor_app(
    profile: "AppProfile",
    *,
    command: str | None = None,
    version: str | None = None,
    packages: Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
) -> typer.Typer:
    """The doctor of `profile` as a typer app to mount: `add_typer(doctor_app(ACME),
    name="doctor")` gives `acme auth doctor [--json] [--reset] [--force] [--unstick-lock] ...`.

    `command` is how its users type it (default `profile.doctor_command`; remediations repeat
    it, so make it the mounted path, e.g. "acme auth doctor"); `version` and `packages` are what
    `--version` and the report's `tool` show (default: the first family's version, and no
    packages); `texts` re-words findings by ID (see `FINDING_TEXTS`; checked here). Exit codes
    (0/1/2), the `--json` error envelope, redaction and the y/N consent on a terminal are the
    doctor's own; the host's exit code is the doctor's.
    """
    from ._texts import check_texts

    setup = DoctorSetup(
        profile=profile,
        tool=command or profile.doctor_command,
        version=version or profile.families[0].version,
        packages={} if packages is None else dict(packages),
        texts=check_texts(texts or {}),
    )
    help_texts = _help_texts(profile, setup.tool)
    # A callback, not a command: mounted with add_typer, the doctor IS `acme auth doctor`
    # (a command inside it would be `acme auth doctor doctor`).
    doctor = typer.Typer(
        cls=_Leaf, add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False
    )
    doctor.callback(
        invoke_without_command=True,
        help=help_texts["help"],
        epilog=help_texts["epilog"],
        context_settings=_CONTEXT,
    )(_command(setup, profile, mounted=True))
    return doctor


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
