"""The fast parser (no typer, no click) and the typer command agree on every option and value,
and leave to click everything the fast parser does not recognise exactly (issue 15, DOC-13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
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


def test_the_default_json_run_imports_no_cli_framework(tmp_path: Path) -> None:
    """The console script's path (`python -m kitty_doctor`) on a fresh home."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kitty_doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KITTY_HOME": str(tmp_path / "fresh")},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "kitty_doctor._run" in imported  # the probe sees the doctor's own modules
    for heavy in ("typer", "click", "rich"):
        assert heavy not in imported, heavy
    # Anything the fast parser leaves to click still works, with click's messages.
    help_run = subprocess.run(
        [sys.executable, "-m", "kitty_doctor", "-h"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (help_run.returncode, help_run.stdout[:19]) == (0, "Usage: kitty-doctor")
