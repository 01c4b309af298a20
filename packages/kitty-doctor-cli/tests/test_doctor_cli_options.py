"""The fast parser (no typer, no click) and the typer command agree on every option and value,
and leave to click everything the fast parser does not recognise exactly (issue 15, DOC-13)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import typer

from kitty_doctor._cli import app
from kitty_doctor._options import FLAGS, VALUES, Options, fast_parse

COMMAND = typer.main.get_command(app)


def _from_click(argv: list[str]) -> Options:
    with COMMAND.make_context("kitty-doctor", list(argv)) as ctx:
        params: dict[str, Any] = dict(ctx.params)
    params.pop("version")
    params["family"] = str(getattr(params["family"], "value", params["family"]))
    return Options(**params)


def test_the_same_options_as_the_typer_command() -> None:
    flags = {o for p in COMMAND.params if getattr(p, "is_flag", False) for o in p.opts}
    valued = {o for p in COMMAND.params if not getattr(p, "is_flag", False) for o in p.opts}
    assert set(FLAGS) == flags - {"--version", "--help", "-h"}
    assert set(VALUES) == valued


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--json"],
        ["--json", "--family", "sync"],
        ["--family=dashboard", "--verbose"],
        ["--home", "/h", "--reset", "--force", "--yes", "--unstick-lock"],
        ["--home=", "--json"],  # empty: refused later, by the doctor, the same way
        ["--stuck-threshold", "0.5", "--expected-daemon-version", "9.9.9"],
        ["--stuck-threshold=1e3", "--login-command", "my-app login"],
        ["--stuck-threshold", "inf"],  # a float; the doctor refuses it later, both paths alike
        ["--family", "sync", "--family", "all"],  # the last one wins, as in click
        ["--json", "--json"],
    ],
)
def test_the_fast_parser_reads_exactly_what_click_reads(argv: list[str]) -> None:
    assert fast_parse(argv) == _from_click(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["-h"],
        ["--help"],
        ["--version"],
        ["--famly", "sync"],
        ["--family", "mail"],
        ["--family"],
        ["--home"],
        ["--home", "-x"],
        ["--stuck-threshold", "-1"],
        ["--stuck-threshold", "soon"],
        ["--json=yes"],
        ["extra"],
        ["--", "--json"],
    ],
)
def test_anything_else_is_left_to_click(argv: list[str]) -> None:
    assert fast_parse(argv) is None


def test_what_the_fast_parser_leaves_to_click_still_works() -> None:
    """With click's messages (that the fast path imports no CLI framework is
    test_doctor_cli_startup's)."""
    help_run = subprocess.run(
        [sys.executable, "-m", "kitty_doctor", "-h"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (help_run.returncode, help_run.stdout[:19]) == (0, "Usage: kitty-doctor")
