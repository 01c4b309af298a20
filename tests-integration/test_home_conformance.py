"""DID-03 conformance: kitty-auth-refresh and kitty-daemon-identity resolve the same home.

Since issue 12 kitty-auth-refresh's `default_home` calls kitty-daemon-identity's (one
implementation); this test keeps the session file and the daemon root under one `KITTY_HOME`
through the public names: same answer when the variable is set, unset or empty, the same `~`
expansion, the same re-read after a change at run time, and for a relative value each package
raises its own `ConfigError` naming the variable and the value.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kitty_auth_refresh as kar
import kitty_daemon_identity as kdi


@pytest.fixture(autouse=True)
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    user_home = tmp_path / "user"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.delenv("KITTY_HOME", raising=False)
    return user_home


def _both() -> tuple[Path, Path]:
    return kar.default_home(), kdi.default_home()


def test_set_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "kh"))
    assert _both() == (tmp_path / "kh", tmp_path / "kh")


@pytest.mark.parametrize("value", [None, ""])
def test_unset_or_empty_is_the_default(
    value: str | None, user_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is not None:
        monkeypatch.setenv("KITTY_HOME", value)
    expected = user_home / ".kitty"
    assert _both() == (expected, expected)


@pytest.mark.parametrize("value", ["~", "~/kh", "~/a/../b"])
def test_tilde_expansion(value: str, user_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_HOME", value)
    expected = Path(os.path.expanduser(value))
    assert str(expected).startswith(str(user_home))
    assert _both() == (expected, expected)


@pytest.mark.parametrize("value", ["relative", "./here", "../up", "a/b"])
def test_relative_raises_each_packages_config_error(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITTY_HOME", value)
    with pytest.raises(kar.ConfigError) as auth_err:
        kar.default_home()
    with pytest.raises(kdi.ConfigError) as daemon_err:
        kdi.default_home()
    for err in (auth_err.value, daemon_err.value):
        assert isinstance(err, ValueError)
        assert "KITTY_HOME" in str(err)
        assert repr(value) in str(err)


def test_re_read_at_every_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "one"))
    assert _both() == (tmp_path / "one",) * 2
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "two"))
    assert _both() == (tmp_path / "two",) * 2


def test_daemon_root_sits_under_the_auth_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setenv("KITTY_HOME", str(link))
    auth_home, daemon_home = _both()
    assert auth_home == daemon_home == link
    assert kdi.daemon_root() == kdi.daemon_root(auth_home) == real / "daemon"


_PATH_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "/.~_- ", max_size=24)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_PATH_TEXT)
def test_any_value_same_answer_or_same_refusal(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_HOME", value)
    outcomes: list[tuple[str, object]] = []
    for resolve in (kar.default_home, kdi.default_home):
        try:
            outcomes.append(("ok", resolve()))
        except ValueError as exc:  # both ConfigErrors are ValueErrors
            outcomes.append(("config_error", "KITTY_HOME" in str(exc)))
    assert outcomes[0] == outcomes[1], (value, outcomes)
    assert outcomes[0] != ("config_error", False), "the error must name KITTY_HOME"


def test_unknown_user_tilde(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_HOME", "~no-such-kitty-user/kh")
    with pytest.raises(kar.ConfigError):
        kar.default_home()
    with pytest.raises(kdi.ConfigError):
        kdi.default_home()
