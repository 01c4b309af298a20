"""argv markers, spawn shape (DID-05, DID-06) and scope ids (DID-04)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from kitty_daemon_identity import (
    EXEC_MARKER_PREFIX,
    ROOT_MARKER_PREFIX,
    Markers,
    _scope,
    marker_args,
    namespace_id,
    parse_markers,
    scope_id,
    spawn_shaped,
)


def test_marker_args_are_resolved(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "ln").symlink_to(real)
    args = marker_args(tmp_path / "ln", sys.executable)
    assert args == [
        f"--kitty-daemon-root={real.resolve()}",
        f"--kitty-daemon-exec={Path(sys.executable).resolve()}",
    ]
    assert parse_markers(args) == Markers(
        str(real.resolve()), str(Path(sys.executable).resolve()), True, False
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], Markers(None, None, False, False)),
        (["python", "-m", "app"], Markers(None, None, False, False)),
        ([f"{ROOT_MARKER_PREFIX}"], Markers("", None, True, False)),  # empty: present, matches none
        ([f"{ROOT_MARKER_PREFIX}/a", f"{ROOT_MARKER_PREFIX}/a"], Markers("/a", None, True, False)),
        ([f"{ROOT_MARKER_PREFIX}/a", f"{ROOT_MARKER_PREFIX}/b"], Markers("/a", None, True, True)),
        ([f"{EXEC_MARKER_PREFIX}/py"], Markers(None, "/py", False, False)),
        # a marker is a whole argv element: a prefix inside another element does not count
        (
            [f"--x={ROOT_MARKER_PREFIX}/a", f"x{ROOT_MARKER_PREFIX}/a"],
            Markers(None, None, False, False),
        ),
    ],
)
def test_parse_markers_table(argv: list[str], expected: Markers) -> None:
    assert parse_markers(argv) == expected


@pytest.mark.parametrize(
    ("argv", "signatures", "expected"),
    [
        (["/usr/bin/python3", "-m", "kitty_daemon_identity"], None, True),
        (["/home/u/.venv/bin/kitty-daemon", "--family", "sync"], None, True),
        (["C:\\venv\\Scripts\\kitty-daemon.exe"], None, True),
        (["python", "app.py", f"{ROOT_MARKER_PREFIX}/r"], None, True),
        (["python", "app.py", f"{EXEC_MARKER_PREFIX}/py"], None, True),
        (["python", "-m", "http.server"], None, False),
        (["python", "-m", "kitty_daemon_identity_fake"], None, False),
        (["python", "-c", "import kitty_daemon_identity"], None, False),
        ([], None, False),
        (["/opt/app/bin/myapp-daemon", "serve"], ("myapp-daemon",), True),
        (["python", "-m", "kitty_daemon_identity"], ("myapp-daemon",), False),
    ],
)
def test_spawn_shape_table(
    argv: list[str], signatures: tuple[str, ...] | None, expected: bool
) -> None:
    if signatures is None:
        assert spawn_shaped(argv) is expected
    else:
        assert spawn_shaped(argv, signatures) is expected


def test_spawn_shape_of_none_is_false() -> None:
    assert spawn_shaped(None) is False


def test_namespace_id_shape_and_stability() -> None:
    nid = namespace_id()
    assert re.fullmatch(r"[0-9a-f]{16}", nid)
    assert namespace_id() == nid


def test_scope_id_is_resolved_root_and_namespace(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "ln").symlink_to(tmp_path / "real")
    assert scope_id(tmp_path / "ln") == f"{(tmp_path / 'real').resolve()}#{namespace_id()}"


def test_namespace_changes_with_boot_or_pid_namespace_not_hostname(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = namespace_id()
    monkeypatch.setattr("kitty_daemon_identity._scope.socket.gethostname", lambda: "renamed-host")
    assert namespace_id() == base  # a hostname change never changes the scope id
    monkeypatch.setattr(_scope, "_pid_namespace", lambda: "pid:[1]")
    other_container = namespace_id()
    assert other_container != base
    monkeypatch.setattr(_scope, "_boot_id", lambda: "another-boot")
    assert namespace_id() not in {base, other_container}
