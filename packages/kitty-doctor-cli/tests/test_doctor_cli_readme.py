"""The README's examples hold: its JSON validates, its commands parse and run, its claims are true.

Its executable content is the `kitty-doctor ...` command lines, the two JSON documents, and the
Python that embeds the doctor in another CLI: all of it runs here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from _doctorkit import run, validate
from kitty_doctor._cli import app

README = Path(__file__).parents[1] / "README.md"
TEXT = README.read_text("utf-8")
(REPORT_EXAMPLE,) = re.findall(r"```json\n(.*?)```", TEXT, re.DOTALL)
(ERROR_EXAMPLE,) = re.findall(r'`(\{"schema_version": 1, "error": .*?\})`', TEXT)
(SYNOPSIS,) = re.findall(r"`kitty-doctor (\[.*?)`", TEXT, re.DOTALL)
# Every `kitty-doctor` invocation shown (console lines, remediations, the table, the JSON), as its
# option words; "kitty-doctor-cli" is the distribution, not the command.
COMMANDS = sorted(
    {tuple(m.split()) for m in re.findall(r"kitty-doctor(?![\w-])((?: --[a-z][a-z-]*)*)", TEXT)}
)
COMMAND = typer.main.get_command(app)
# The CLI runs here scan only this quiet corner of the package's 20400-20599 block, which no
# other test binds: a listener left by a concurrent run elsewhere in the block cannot show up.
SYNC_PORTS, DASHBOARD_PORTS = "20570-20575", "20575-20580"


@pytest.fixture(autouse=True)
def _quiet_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_SYNC_PORTS", SYNC_PORTS)
    monkeypatch.setenv("KITTY_DASHBOARD_PORTS", DASHBOARD_PORTS)


def _fresh_report() -> dict[str, Any]:
    result = run("--json")
    assert result.code == 1, result.err
    return result.json()


def test_readme_shows_the_repair_commands() -> None:
    # Guards the extraction: if the pattern stopped matching, the tests below would check nothing.
    assert {(), ("--reset",), ("--reset", "--force"), ("--unstick-lock",)} <= set(COMMANDS)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(("kitty-doctor", *a)))
def test_every_command_in_the_readme_parses_and_runs(home: Path, args: tuple[str, ...]) -> None:
    if "--help" in args:
        result = run(*args)
        assert (result.code, result.err) == (0, ""), result.out
        assert result.out.startswith("Usage: kitty-doctor")
        return
    with COMMAND.make_context("kitty-doctor", list(args)) as ctx:  # click raises on a bad option
        assert ctx.params["home"] is None
    result = run(*args)
    # A fresh home: no session is the one critical finding; no usage or internal error.
    assert (result.code, result.err) == (1, ""), result.out
    assert "KD101 no_session" in result.out


def test_synopsis_lists_exactly_the_real_options() -> None:
    shown = set(re.findall(r"--[a-z][a-z-]*", SYNOPSIS))
    real = {opt for param in COMMAND.params for opt in param.opts if opt.startswith("--")}
    assert shown == real - {"--help"}


def test_fresh_machine_output_is_as_described(home: Path) -> None:
    result = run()
    assert result.code == 1, result.out
    for phrase in ("✗ not logged in", "✓ unheld", "no state record", "no orphans"):
        assert phrase in result.out, result.out
    assert re.findall(r"KD\d{3} \w+", result.out) == ["KD101 no_session"]
    assert "→ log in again with your application" in result.out


def test_json_example_validates_against_the_shipped_schema() -> None:
    doc = json.loads(REPORT_EXAMPLE)
    validate(doc)
    assert doc["exit_code"] == 1
    assert [f["id"] for f in doc["findings"]] == ["KD201", "KD401"]


def test_json_example_has_the_shape_of_a_real_report(home: Path) -> None:
    doc, real = json.loads(REPORT_EXAMPLE), _fresh_report()
    assert doc.keys() == real.keys()
    # These objects are shown in full in the README (the others are abbreviated or null here).
    for key in ("tool", "home", "identity", "tokens", "storage", "refresh_lock", "scope_key"):
        assert doc[key].keys() == real[key].keys(), key
    assert doc["tool"]["packages"].keys() == real["tool"]["packages"].keys()
    assert doc["repairs"] == real["repairs"]
    assert doc["sections"].keys() == real["sections"].keys()
    assert doc["findings"][0].keys() == real["findings"][0].keys()


def test_error_example_is_what_a_bad_option_prints(home: Path) -> None:
    doc = json.loads(ERROR_EXAMPLE)
    validate(doc)
    (bad_option,) = re.findall(r"No such option: (--\S+)", doc["error"]["message"])
    result = run("--json", bad_option)
    assert result.code == 2
    assert result.json() == doc


ROOT_README = Path(__file__).parents[3] / "README.md"


def _as_in_readme(text: str, home: Path) -> str:
    """Real output with this machine's facts replaced by the README's: the home path, the
    filesystem type and the (test-shifted) port ranges."""
    text = text.replace(str(home), "/home/you")
    text = re.sub(r"flock on \w+", "flock on ext4", text)
    return re.sub(
        r"scanned ports .*", "scanned ports sync 9400-9450, dashboard 9237-9337", text, count=1
    )


def test_root_readme_shows_what_a_fresh_machine_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: the first-run transcripts in the repository README are real, including a home
    made with plain mkdir (0755), which gets KD105 with its one-line explanation."""
    fresh, made = re.findall(r"```text\n(.*?)```", ROOT_README.read_text("utf-8"), re.DOTALL)
    monkeypatch.delenv("KITTY_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    result = run()
    assert result.code == 1, result.err
    assert _as_in_readme(result.out, tmp_path) == fresh
    (tmp_path / ".kitty").mkdir(mode=0o755)
    (tmp_path / ".kitty").chmod(0o755)  # whatever the umask
    result = run()
    assert result.code == 1, result.err
    assert _as_in_readme(result.out, tmp_path).endswith(made)
    assert "other users can look inside the home" in made


def test_the_embedding_snippets_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from typer.testing import CliRunner

    blocks = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)
    assert len(blocks) == 3
    monkeypatch.setenv("ACME_HOME", str(tmp_path / "acme"))
    monkeypatch.setenv("ACME_SYNC_PORTS", SYNC_PORTS)  # the quiet corner, not 18400-18450
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    printed = capsys.readouterr().out
    assert printed.startswith("acme auth doctor 1.4.0")
    assert "KD101 no_session: no acme session at" in printed
    assert "kitty" not in printed.replace(str(tmp_path), "")
    mounted = CliRunner().invoke(namespace["app"], ["auth", "doctor", "--json"], prog_name="acme")
    assert mounted.exit_code == 1
    assert json.loads(mounted.stdout)["tool"]["name"] == "acme auth doctor"
    host = typer.Typer()
    host.add_typer(namespace["acme_doctor"], name="doctor")
    reworded = CliRunner().invoke(host, ["doctor"], prog_name="acme")
    assert "KD101 no_session: you are not signed in to acme (no session at" in reworded.stdout
