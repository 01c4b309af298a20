"""The doctor as a library (issue 13): build the report for an app, render it, run repairs.

What `kitty-doctor` does, as calls an application makes for its own profile (an `AppProfile` of
kitty-daemon-identity; None is kitty's own). `build_report` returns the typed `Report`, the same
data as `--json` (`report_document(report)` is that document); `render_report` prints the human
report on a `rich.Console`, with every secret the run saw masked; `run_repairs` runs `--reset`
and `--unstick-lock` and returns the `Repairs` that `build_report(repairs=...)` reports. The
ready typer app is `doctor_app` (`_cli`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._config import Config, DoctorSetup, resolve_config
from ._model import DEFAULT_STUCK_THRESHOLD_S, Repairs, Report
from ._redact import Redactor

if TYPE_CHECKING:
    from rich.console import Console

    from kitty_daemon_identity import AppProfile

#: One daemon the operator is asked about: its headline and the lines to review.
Candidate = tuple[str, tuple[str, ...]]


def _resolve(
    profile: AppProfile | None,
    home: Path | str | None,
    family: str,
    stuck_threshold_s: float,
    expected_daemon_version: str | None,
    login_command: str | None,
    command: str | None,
    texts: Mapping[str, str] | None,
) -> Config:
    return resolve_config(
        home=None if home is None else Path(home),
        family=family,
        stuck_threshold_s=stuck_threshold_s,
        expected_daemon_version=expected_daemon_version,
        login_command=login_command,
        profile=profile,
        tool=command,
        texts=texts,
    )


def _setup(
    profile: AppProfile | None, version: str | None, packages: Mapping[str, str] | None
) -> DoctorSetup:
    if profile is None or (profile.name == "kitty" and version is None and packages is None):
        return DoctorSetup(profile=profile)
    return DoctorSetup(
        profile=profile,
        version=version or profile.families[0].version,
        packages={} if packages is None else dict(packages),
    )


def build_report(
    profile: AppProfile | None = None,
    *,
    home: Path | str | None = None,
    family: str = "all",
    stuck_threshold_s: float = DEFAULT_STUCK_THRESHOLD_S,
    expected_daemon_version: str | None = None,
    login_command: str | None = None,
    command: str | None = None,
    texts: Mapping[str, str] | None = None,
    version: str | None = None,
    packages: Mapping[str, str] | None = None,
    repairs: Repairs | None = None,
) -> Report:
    """The doctor's report on `profile`'s local state (offline, read-only).

    The options are the command line's (`--home`, `--family`, ...); `command` is the doctor
    command remediations name (default `profile.doctor_command`), `texts` re-words findings
    by ID (`FINDING_TEXTS`), `version`/`packages` are the report's `tool` (default: the first
    family's version, no packages; kitty's own: the five packages). `DoctorConfigError` for a
    value no section could be trusted with (a relative home, a bad range variable).
    """
    from ._report import build_report as build

    cfg = _resolve(
        profile,
        home,
        family,
        stuck_threshold_s,
        expected_daemon_version,
        login_command,
        command,
        texts,
    )
    setup = _setup(profile, version, packages)
    return build(
        cfg,
        tool_version=setup.tool_version(),
        packages=setup.package_versions(),
        redactor=Redactor(),
        repairs=repairs,
    )


def render_report(
    report: Report, console: Console, *, verbose: bool = False, wrap: bool = True
) -> None:
    """Print the human report on `console`, every secret the run saw masked first.

    `wrap` wraps each line at the console's width (at spaces, with a hanging indent, never
    inside a word); without it each report line is one line (for pipes and grep). Colour
    follows `console`.
    """
    from rich.console import Console

    from ._render import render

    buffer = io.StringIO()
    # Rendered into a buffer with the console's own colour settings, so the redactor sees every
    # byte before the console's file does.
    staged = Console(
        file=buffer,
        force_terminal=console.is_terminal,
        color_system=console.color_system,  # type: ignore[arg-type]  # rich's own value
        no_color=console.no_color,
        highlight=False,
        width=console.width,
    )
    render(report, staged, verbose=verbose, width=console.width if wrap else None)
    console.file.write(report.scrub(buffer.getvalue()))
    console.file.flush()


def run_repairs(
    profile: AppProfile | None = None,
    *,
    reset: bool = False,
    force: bool = False,
    unstick_lock: bool = False,
    ask: Callable[[Sequence[Candidate]], bool] | None = None,
    home: Path | str | None = None,
    family: str = "all",
    stuck_threshold_s: float = DEFAULT_STUCK_THRESHOLD_S,
    expected_daemon_version: str | None = None,
    command: str | None = None,
) -> Repairs:
    """Run `--reset` (stop what the sweep proves safe; with `force`, or when `ask` answers
    True for the listed candidates, also what needs consent) and/or `--unstick-lock` (clear a
    stale lock record), in that order. Pass the result to `build_report(repairs=...)`.

    Nothing here decides what is safe: kitty-orphan-sweep's guarded stop path does, re-checking
    each pid's exact create time and the app's root marker right before any signal.
    """
    from ._repair import run_reset, run_unstick

    cfg = _resolve(
        profile, home, family, stuck_threshold_s, expected_daemon_version, None, command, None
    )
    block = None
    if reset:
        block = run_reset(
            cfg,
            force=force,
            interactive=ask is not None,
            ask=ask or (lambda _candidates: False),
        )
    return Repairs(reset=block, unstick_lock=run_unstick(cfg) if unstick_lock else None)
