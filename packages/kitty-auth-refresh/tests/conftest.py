"""Fixtures for kitty-auth-refresh tests; helpers live in ``_authkit``."""

from __future__ import annotations

import logging
import pathlib
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from _authkit import TOKEN_URL, ApiServer, FakeClock, Handler
from kitty_auth_refresh import SessionStore, TokenEndpoint


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    path = tmp_path / "home"
    monkeypatch.setenv("KITTY_HOME", str(path))
    monkeypatch.delenv("KITTY_LOGIN_COMMAND", raising=False)
    return path


@pytest.fixture
def store(home: pathlib.Path) -> SessionStore:
    return SessionStore(home / "auth")


@pytest.fixture
def lock_path(store: SessionStore) -> pathlib.Path:
    return store.root / "refresh.lock"


@pytest.fixture
def endpoint_for(fake_clock: FakeClock) -> Iterator[Callable[..., TokenEndpoint]]:
    made: list[TokenEndpoint] = []

    def build(script: Handler, timeout: float = 10.0) -> TokenEndpoint:
        endpoint = TokenEndpoint(
            TOKEN_URL,
            "kitty-cli",
            timeout,
            transport=httpx.MockTransport(script),
            now=lambda: fake_clock.wall,
        )
        made.append(endpoint)
        return endpoint

    yield build
    for endpoint in made:
        endpoint.close()


@pytest.fixture
def auth_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def api() -> Iterator[ApiServer]:
    """A real loopback token endpoint and protected API (see ``ApiServer``)."""
    server = ApiServer()
    yield server
    server.close()
