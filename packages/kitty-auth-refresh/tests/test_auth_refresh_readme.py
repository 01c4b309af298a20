"""The README's usage examples run as written (and stay short)."""

from __future__ import annotations

import pathlib
import re

import pytest

from kitty_auth_refresh import _endpoint

README = pathlib.Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)


def test_readme_has_sync_async_confidential_and_discovery_examples() -> None:
    assert len(BLOCKS) == 5
    assert "SyncTokenManager" in BLOCKS[0]
    assert "TokenManager(" in BLOCKS[1]
    assert "asyncio.run" in BLOCKS[1]
    # Issue 14: a confidential client (secret, then key) and discovery, all executed below.
    assert "client_secret=" in BLOCKS[2]
    assert "get_access_token()" in BLOCKS[2]
    assert "private_key=" in BLOCKS[3]
    assert "TokenEndpoint.from_issuer(" in BLOCKS[4]
    assert "token_endpoint_auth_methods_supported" in BLOCKS[4]
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
    monkeypatch.setattr(_endpoint, "_discovery_cache", {})  # discovery is cached per process
    code = compile(BLOCKS[index], f"README.md example {index + 1}", "exec")
    exec(code, {"__name__": f"readme_example_{index}"})  # noqa: S102 - our own README
    if index == 1:
        assert "Run `my-cli login` to sign in again." in capsys.readouterr().out
