"""The README's usage examples run as written (and stay short)."""

from __future__ import annotations

import pathlib
import re

import pytest

from _authkit import ApiServer
from kitty_auth_refresh import _endpoint

README = pathlib.Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
EMBEDDING = 2  # issue 13: login response -> Session -> store, then httpx.Client(auth=TokenAuth)
README_SERVER = "http://127.0.0.1:8400"


def test_readme_has_sync_async_confidential_and_discovery_examples() -> None:
    assert len(BLOCKS) == 6
    assert "SyncTokenManager" in BLOCKS[0]
    assert "TokenManager(" in BLOCKS[1]
    assert "asyncio.run" in BLOCKS[1]
    assert "session_from_token_response(httpx.post(" in BLOCKS[EMBEDDING]
    assert "httpx.Client(auth=TokenAuth(manager))" in BLOCKS[EMBEDDING]
    # Issue 14: a confidential client (secret, then key) and discovery, all executed below.
    assert "client_secret=" in BLOCKS[3]
    assert "get_access_token()" in BLOCKS[3]
    assert "private_key=" in BLOCKS[4]
    assert "TokenEndpoint.from_issuer(" in BLOCKS[5]
    assert "token_endpoint_auth_methods_supported" in BLOCKS[5]
    for block in BLOCKS:
        code_lines = [line for line in block.splitlines() if line.strip()]
        assert len(code_lines) <= 20


@pytest.mark.parametrize("index", [i for i in range(len(BLOCKS)) if i != EMBEDDING])
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


def test_readme_embedding_example_runs_against_a_loopback_server(
    api: ApiServer,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KITTY_HOME", str(tmp_path))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)  # the example's own httpx calls go to loopback
    source = BLOCKS[EMBEDDING]
    assert source.count(README_SERVER) == 2
    code = compile(source.replace(README_SERVER, api.url), "README.md embedding", "exec")

    def refuse_the_login_token(token: str) -> None:  # a 401 for the first call only
        if token == api.issued[0]:
            api.accepted.discard(token)

    api.on_api = refuse_the_login_token
    exec(code, {"__name__": "readme_embedding"})  # noqa: S102 - our own README
    assert capsys.readouterr().out == "{'body': 0}\n"  # the API's answer to the retry
    login_access, login_refresh, new_access, _ = api.issued
    assert [token for token, _ in api.calls] == [login_access, new_access]
    assert api.refreshes == [login_refresh]  # the stored login session was refreshed once
    assert (tmp_path / "auth" / "session.json").exists()
