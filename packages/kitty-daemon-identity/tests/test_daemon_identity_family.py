"""Families, half-open ranges with env overrides, home/daemon-root resolution, per-family paths."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from kitty_daemon_identity import (
    DASHBOARD_RANGE,
    SYNC_RANGE,
    ConfigError,
    DaemonFamily,
    KittyDaemonError,
    PortRange,
    RangeConfigError,
    daemon_root,
    default_home,
    family_range,
    log_path,
    range_variable,
    scope_key_path,
    spawn_lock_path,
    state_path,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KITTY_SYNC_PORTS", "KITTY_DASHBOARD_PORTS", "KITTY_HOME"):
        monkeypatch.delenv(var, raising=False)


def test_family_values_are_wire_strings() -> None:
    assert [f.value for f in DaemonFamily] == ["sync", "dashboard"]
    assert DaemonFamily("sync") is DaemonFamily.SYNC
    assert str(DaemonFamily.DASHBOARD) == "dashboard"


def test_port_range_is_half_open() -> None:
    r = PortRange(9400, 9450)
    assert 9400 in r
    assert 9449 in r
    assert 9399 not in r
    assert 9450 not in r
    assert len(r) == 50
    assert next(iter(r)) == 9400
    assert list(r)[-1] == 9449
    assert str(r) == "9400-9450"
    assert PortRange.parse("9400-9450") == r
    assert PortRange.parse(" 1-65536 ") == PortRange(1, 65536)


def test_port_range_contains_rejects_non_ints() -> None:
    r = PortRange(1, 3)
    assert True not in r  # a bool is not a port
    assert "2" not in r
    assert 2.0 not in r


@pytest.mark.parametrize(
    "text", ["", "9400", "a-b", "9450-9400", "9400-9400", "0-10", "10-65537", "9400-9450-9500"]
)
def test_port_range_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="port range"):
        PortRange.parse(text)


def test_port_range_constructor_validates_types() -> None:
    with pytest.raises(ValueError, match="must be an int"):
        PortRange(True, 10)


def test_default_ranges() -> None:
    assert family_range(DaemonFamily.SYNC) == SYNC_RANGE == PortRange(9400, 9450)
    assert family_range(DaemonFamily.DASHBOARD) == DASHBOARD_RANGE == PortRange(9237, 9337)
    assert len(SYNC_RANGE) == 50
    assert len(DASHBOARD_RANGE) == 100


def test_env_override_is_read_at_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    assert family_range(DaemonFamily.SYNC) == SYNC_RANGE
    monkeypatch.setenv("KITTY_SYNC_PORTS", "20100-20110")
    assert family_range(DaemonFamily.SYNC) == PortRange(20100, 20110)
    monkeypatch.setenv("KITTY_DASHBOARD_PORTS", "20110-20120")  # adjacent, not overlapping
    assert family_range(DaemonFamily.DASHBOARD) == PortRange(20110, 20120)
    assert range_variable(DaemonFamily.DASHBOARD) == "KITTY_DASHBOARD_PORTS"


@pytest.mark.parametrize("value", ["abc", "9450-9400", "0-5", "1-70000", "9400"])
def test_bad_override_names_variable_and_value(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KITTY_SYNC_PORTS", value)
    with pytest.raises(RangeConfigError) as info:
        family_range(DaemonFamily.SYNC)
    err = info.value
    assert err.variable == "KITTY_SYNC_PORTS"
    assert err.value == value
    assert "KITTY_SYNC_PORTS" in str(err)
    assert value in str(err)
    assert isinstance(err, ConfigError)
    assert isinstance(err, ValueError)


def test_overlapping_ranges_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_SYNC_PORTS", "9300-9310")  # inside the default dashboard range
    with pytest.raises(RangeConfigError, match="overlaps the dashboard range 9237-9337"):
        family_range(DaemonFamily.SYNC)
    with pytest.raises(RangeConfigError, match="overlaps the sync range"):
        family_range(DaemonFamily.DASHBOARD)


def test_errors_pickle_and_keep_attributes() -> None:
    err = RangeConfigError("KITTY_SYNC_PORTS", "x", "bad")
    clone = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes, round-trip test
    assert type(clone) is RangeConfigError
    assert (clone.variable, clone.value, clone.reason) == ("KITTY_SYNC_PORTS", "x", "bad")
    assert str(clone) == str(err)
    assert issubclass(ConfigError, KittyDaemonError)


def test_default_home_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"
    monkeypatch.setenv("KITTY_HOME", "")
    assert default_home() == Path.home() / ".kitty"


def test_default_home_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KITTY_HOME", "~/k")
    assert default_home() == tmp_path / "k"


def test_relative_kitty_home_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_HOME", "relative/home")
    with pytest.raises(ConfigError) as info:
        default_home()
    assert info.value.variable == "KITTY_HOME"
    assert "absolute" in str(info.value)


def test_unknown_user_tilde_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Path.expanduser would raise a bare RuntimeError here; the user must get the named variable.
    monkeypatch.setenv("KITTY_HOME", "~no-such-kitty-user/kh")
    with pytest.raises(ConfigError) as info:
        default_home()
    assert info.value.variable == "KITTY_HOME"


def test_daemon_root_resolves_symlinks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert daemon_root(link) == (real / "daemon").resolve()
    monkeypatch.setenv("KITTY_HOME", str(link))
    assert daemon_root() == (real / "daemon").resolve()


def test_per_family_file_names(tmp_path: Path) -> None:
    assert state_path(tmp_path, DaemonFamily.SYNC) == tmp_path / "state.json"
    assert state_path(tmp_path, DaemonFamily.DASHBOARD) == tmp_path / "dashboard-state.json"
    assert spawn_lock_path(tmp_path, DaemonFamily.SYNC) == tmp_path / "spawn.lock"
    assert spawn_lock_path(tmp_path, DaemonFamily.DASHBOARD) == tmp_path / "dashboard-spawn.lock"
    assert log_path(tmp_path, DaemonFamily.SYNC) == tmp_path / "daemon.log"
    assert log_path(tmp_path, DaemonFamily.DASHBOARD) == tmp_path / "dashboard.log"
    assert scope_key_path(tmp_path) == tmp_path / "scope.key"


@pytest.mark.parametrize(
    ("local_app_data", "expected"),
    [("/profile/Local", "/profile/Local/kitty"), ("", "{home}/AppData/Local/kitty")],
    ids=["LOCALAPPDATA", "no-LOCALAPPDATA"],
)
def test_windows_default_home_through_its_seam(
    local_app_data: str, expected: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kitty_daemon_identity import _home

    monkeypatch.setattr(_home, "_OS_NAME", "nt")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LOCALAPPDATA", local_app_data)
    assert default_home() == Path(expected.format(home=tmp_path))
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "explicit"))
    assert default_home() == tmp_path / "explicit"  # the variable still wins on Windows
