"""The README's usage examples run as written (and stay short)."""

from __future__ import annotations

import pathlib
import re

import pytest

README = pathlib.Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_has_a_sync_and_an_async_example() -> None:
    assert len(BLOCKS) == 2
    assert "SyncTokenManager" in BLOCKS[0]
    assert "TokenManager(" in BLOCKS[1]
    assert "asyncio.run" in BLOCKS[1]
    for block in BLOCKS:
        code_lines = [line for line in block.splitlines() if line.strip()]
        assert len(code_lines) <= 20


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(
    index: int,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KITTY_HOME", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    code = compile(BLOCKS[index], f"README.md example {index + 1}", "exec")
    exec(code, {"__name__": f"readme_example_{index}"})  # noqa: S102 - our own README
    if index == 1:
        assert "Run `my-cli login` to sign in again." in capsys.readouterr().out
