"""Session model, JSON codec and ``SessionStore`` (AUTH-02 .. AUTH-07), plus ``default_home``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pathlib
import pickle
import stat
import sys
import time
from typing import Any

import pytest

from _authkit import T0, make_session
from kitty_auth_refresh import (
    ConfigError,
    CorruptSession,
    Session,
    SessionStore,
    StoreWriteFailed,
    default_home,
    same_material,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")


# ---- Session ----------------------------------------------------------------------------------


def test_session_hides_tokens_in_repr_and_str() -> None:
    session = make_session()
    for text in (repr(session), str(session)):
        assert session.access_token not in text
        assert session.refresh_token not in text
        assert "access_token='***'" in text
        assert "refresh_token='***'" in text


def test_naive_datetimes_are_coerced_to_utc() -> None:
    naive = dt.datetime(2030, 1, 1, 12, 0)
    session = make_session(access_expires_at=naive, issued_at=naive)
    assert session.access_expires_at == T0
    assert session.access_expires_at.tzinfo is dt.UTC
    offset = dt.datetime(2030, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert make_session(issued_at=offset).issued_at == T0


@pytest.mark.parametrize(
    ("changes", "error", "fragment"),
    [
        ({"session_id": ""}, ValueError, "session_id"),
        ({"access_token": ""}, ValueError, "access_token"),
        ({"refresh_token": 7}, ValueError, "refresh_token"),
        ({"issued_at": "2030-01-01"}, TypeError, "issued_at"),
        ({"refresh_expires_at": 5}, TypeError, "refresh_expires_at"),
        ({"scope": 1}, TypeError, "scope"),
        ({"extra": {"access_token": "x"}}, ValueError, "known fields"),
    ],
)
def test_session_validation_names_the_field(
    changes: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        make_session(**changes)


def test_extra_is_a_read_only_private_copy() -> None:
    source = {"team_hint": "t-7"}
    session = make_session(extra=source)
    source["team_hint"] = "changed"
    assert session.extra["team_hint"] == "t-7"
    with pytest.raises(TypeError):
        session.extra["x"] = 1  # type: ignore[index]  # proving the mapping is read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.access_token = "x"  # type: ignore[misc]  # proving the dataclass is frozen


def test_session_pickles() -> None:
    session = make_session(extra={"team_hint": "t-7"})
    assert pickle.loads(pickle.dumps(session)) == session  # noqa: S301 - our own bytes


def test_same_material_needs_both_id_and_refresh_token() -> None:
    a = make_session(session_id="s1")
    assert same_material(a, dataclasses.replace(a, access_token="other"))
    assert same_material(a, dataclasses.replace(a, access_expires_at=T0 + dt.timedelta(days=1)))
    assert not same_material(a, dataclasses.replace(a, session_id="s2"))
    assert not same_material(a, dataclasses.replace(a, refresh_token="other"))
    assert not same_material(a, make_session(session_id="s2", refresh_token=a.refresh_token))


# ---- store round trip and format --------------------------------------------------------------


def test_read_missing_file_is_none(store: SessionStore) -> None:
    assert store.read() is None


def test_round_trip_preserves_everything_including_unknown_fields(store: SessionStore) -> None:
    session = make_session(
        refresh_expires_at=T0 + dt.timedelta(days=30, microseconds=5),
        scope="openid offline_access",
        extra={"team_hint": "t-7", "nested": {"a": [1, 2]}},
    )
    store.write(session)
    assert store.read() == session
    doc = json.loads(store.path.read_text())
    assert doc["schema_version"] == 1
    assert doc["team_hint"] == "t-7"  # unknown fields go back at top level
    assert doc["access_expires_at"].endswith("Z")
    assert doc["refresh_expires_at"].endswith("Z")


def test_spec_example_document_is_read(store: SessionStore) -> None:
    store.root.mkdir(parents=True)
    store.path.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "session_id": "sess-9f2",
                "access_token": "a",
                "refresh_token": "r",
                "access_expires_at": "2025-05-01T11:00:00Z",
                "refresh_expires_at": None,
                "issued_at": "2025-05-01T10:00:00Z",
                "scope": "openid offline_access",
                "token_type": "Bearer",
                "subject": "user-1",
                "email": "a@example.com",
                "team_hint": "t-7",
            }
        )
    )
    session = store.read()
    assert session is not None
    assert session.refresh_expires_at is None
    assert dict(session.extra) == {"team_hint": "t-7"}
    store.write(session)
    assert json.loads(store.path.read_text())["team_hint"] == "t-7"


def test_newer_schema_with_valid_fields_is_read(store: SessionStore) -> None:
    store.write(make_session())
    doc = json.loads(store.path.read_text())
    doc["schema_version"] = 2
    store.path.write_text(json.dumps(doc))
    assert store.read() is not None


def _valid_doc() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "session_id": "s",
        "access_token": "a",
        "refresh_token": "r",
        "access_expires_at": "2030-01-01T00:00:00Z",
        "issued_at": "2030-01-01T00:00:00Z",
    }


def _with(**changes: Any) -> bytes:
    doc = _valid_doc()
    for key, value in changes.items():
        if value is ...:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"[1, 2]", "list, not an object"),
        (b"null", "NoneType, not an object"),
        (_with(refresh_token=...), "refresh_token"),
        (_with(session_id=""), "session_id"),
        (_with(access_token=None), "access_token"),
        (_with(access_expires_at="yesterday"), "access_expires_at"),
        (_with(issued_at=5), "issued_at"),
        (_with(refresh_expires_at="soon"), "refresh_expires_at"),
        (_with(scope=["a"]), "scope"),
        (_with(schema_version="1"), "schema_version"),
        (_with(schema_version=True), "schema_version"),
        (_with(schema_version=0), "schema_version"),
        (_with(schema_version=9, refresh_token=...), "newer"),
    ],
)
def test_corrupt_inputs_raise_corrupt_session_and_keep_the_file(
    store: SessionStore, content: bytes, reason: str
) -> None:
    store.root.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(CorruptSession) as info:
        store.read()
    assert reason in info.value.reason
    assert str(store.path) in str(info.value)
    assert store.path.read_bytes() == content  # readers never delete or rewrite
    # The reason never quotes file content (which may hold tokens).
    assert '"a"' not in info.value.reason


def test_oversized_and_directory_paths_are_corrupt(store: SessionStore) -> None:
    store.root.mkdir(parents=True)
    store.path.write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(CorruptSession, match="larger"):
        store.read()
    store.path.unlink()
    store.path.mkdir()
    with pytest.raises(CorruptSession, match="directory"):
        store.read()


def test_corrupt_session_pickles() -> None:
    error = CorruptSession("/x/session.json", "file is not valid JSON (at byte 0)")
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (clone.path, clone.reason, str(clone)) == (error.path, error.reason, str(error))
    assert isinstance(clone, ValueError)


# ---- atomic, private writes -------------------------------------------------------------------


@posix_only
def test_file_and_dirs_private_from_creation_under_umask_0(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SessionStore(tmp_path / "home" / "auth")
    created_modes: list[int] = []
    real_open = os.open

    def spy_open(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        if flags & os.O_CREAT:
            created_modes.append(mode)
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy_open)
    old = os.umask(0)
    try:
        store.write(make_session())
    finally:
        os.umask(old)
    assert created_modes == [0o600]  # the mode is given at creation, not chmod-ed later
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.root.parent.stat().st_mode) == 0o700


@posix_only
def test_existing_home_is_never_chmodded(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # noqa: S103 - a user's own choice of mode
    SessionStore(home / "auth").write(make_session())
    assert stat.S_IMODE(home.stat().st_mode) == 0o755


@pytest.mark.parametrize("failing", ["fsync", "replace", "write"])
def test_failed_write_leaves_old_file_intact_and_no_temp(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    old = make_session(session_id="old")
    store.write(old)
    before = store.path.read_bytes()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, boom)
    new = make_session(session_id="new")
    with pytest.raises(StoreWriteFailed) as info:
        store.write(new)
    monkeypatch.undo()
    assert info.value.session == new
    assert info.value.path == str(store.path)
    assert "No space left" in str(info.value)
    assert isinstance(info.value, OSError)
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in store.root.iterdir()) == ["session.json"]


def test_failed_directory_fsync_reports_but_keeps_new_file(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write(make_session(session_id="old"))
    real_fsync = os.fsync
    calls = {"n": 0}

    def fsync_fails_second(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(5, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_fails_second)
    new = make_session(session_id="new")
    with pytest.raises(StoreWriteFailed):
        store.write(new)
    monkeypatch.undo()
    assert store.read() == new


def test_unwritable_directory_raises_store_write_failed(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = SessionStore(blocker / "auth")
    session = make_session()
    with pytest.raises(StoreWriteFailed) as info:
        store.write(session)
    assert info.value.session == session


def test_store_write_failed_pickle_drops_the_session() -> None:
    session = make_session()
    error = StoreWriteFailed("/x/session.json", "OSError: No space left on device", session)
    data = pickle.dumps(error)
    assert session.refresh_token.encode() not in data
    assert session.access_token.encode() not in data
    clone = pickle.loads(data)  # noqa: S301 - our own bytes
    assert clone.session is None
    assert str(clone) == str(error)
    assert session.refresh_token not in repr(error)


def test_old_temp_files_are_removed_fresh_ones_kept(store: SessionStore) -> None:
    store.write(make_session())
    old_temp = store.root / ".session.json.1.dead.tmp"
    fresh_temp = store.root / ".session.json.2.live.tmp"
    unrelated = store.root / "notes.tmp"
    for path in (old_temp, fresh_temp, unrelated):
        path.write_text("x")
    two_hours_ago = time.time() - 7200
    os.utime(old_temp, (two_hours_ago, two_hours_ago))
    os.utime(unrelated, (two_hours_ago, two_hours_ago))
    store.write(make_session())
    assert not old_temp.exists()
    assert fresh_temp.exists()
    assert unrelated.exists()


def test_delete_is_idempotent(store: SessionStore) -> None:
    store.write(make_session())
    store.delete()
    assert store.read() is None
    store.delete()
    assert store.read() is None


def test_repr_and_default_root(home: pathlib.Path) -> None:
    store = SessionStore()
    assert store.root == home / "auth"
    assert store.path == home / "auth" / "session.json"
    assert str(home) in repr(store)


# ---- default_home (SPEC §0.2, §0.4) -----------------------------------------------------------


def test_default_home_is_reread_on_every_call(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "a"))
    assert default_home() == tmp_path / "a"
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "b"))
    assert default_home() == tmp_path / "b"


def test_default_home_expands_user_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/somebody")
    monkeypatch.setenv("KITTY_HOME", "~/custom")
    assert default_home() == pathlib.Path("/home/somebody/custom")
    monkeypatch.setenv("KITTY_HOME", "")
    if sys.platform != "win32":
        assert default_home() == pathlib.Path("/home/somebody/.kitty")
    monkeypatch.delenv("KITTY_HOME")
    if sys.platform != "win32":
        assert default_home() == pathlib.Path("/home/somebody/.kitty")


@pytest.mark.parametrize(
    ("os_name", "kitty_home", "local_app_data"),
    [
        ("posix", None, None),
        ("posix", "~/custom", None),
        ("nt", None, "/profile/Local"),
        ("nt", None, ""),  # no LOCALAPPDATA: ~/AppData/Local/kitty (was ~/.kitty here)
        ("nt", "", ""),
    ],
)
def test_default_home_is_kitty_daemon_identitys(
    os_name: str,
    kitty_home: str | None,
    local_app_data: str | None,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One implementation (issue 12): the same answer as kitty-daemon-identity's, the Windows
    branch included (through that package's OS seam)."""
    import kitty_daemon_identity
    from kitty_daemon_identity import _home

    monkeypatch.setattr(_home, "_OS_NAME", os_name)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, value in (("KITTY_HOME", kitty_home), ("LOCALAPPDATA", local_app_data)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert default_home() == kitty_daemon_identity.default_home()
    assert SessionStore().root == kitty_daemon_identity.default_home() / "auth"
    if os_name == "nt" and not kitty_home and not local_app_data:
        assert default_home() == tmp_path / "AppData" / "Local" / "kitty"


def test_relative_kitty_home_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITTY_HOME", "relative/dir")
    with pytest.raises(ConfigError) as info:
        default_home()
    assert info.value.variable == "KITTY_HOME"
    assert info.value.value == "relative/dir"
    assert "KITTY_HOME='relative/dir'" in str(info.value)
    assert "absolute" in str(info.value)
    assert isinstance(info.value, ValueError)
    clone = pickle.loads(pickle.dumps(info.value))  # noqa: S301 - our own bytes
    assert str(clone) == str(info.value)
    with pytest.raises(ConfigError):
        SessionStore()


def test_session_type_is_exported_dataclass() -> None:
    assert dataclasses.is_dataclass(Session)


UMASK_CHILD = r"""
import datetime as dt, os, stat, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from kitty_auth_refresh import Session, SessionStore
home = Path(sys.argv[1]) / "new-home"
now = dt.datetime.now(dt.UTC)
SessionStore(home / "auth").write(
    Session(
        session_id="s", access_token="a", refresh_token="r",
        access_expires_at=now + dt.timedelta(hours=1), issued_at=now,
    )
)
print(*(oct(stat.S_IMODE(p.stat().st_mode)) for p in (home, home / "auth")))
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
@pytest.mark.parametrize("umask", ["000", "277"])
def test_home_and_auth_dir_are_0700_whatever_the_umask(tmp_path: pathlib.Path, umask: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", UMASK_CHILD, str(tmp_path), umask],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0o700", "0o700"]


FIFO_CHILD = r"""
import os, sys
from kitty_auth_refresh import CorruptSession, SessionStore, auth_status
store = SessionStore(sys.argv[1])
os.mkfifo(store.path)
try:
    store.read()
except CorruptSession as exc:
    print("corrupt:", exc.reason)
print("status:", auth_status(store).state.value)
"""


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_a_fifo_at_the_session_path_is_reported_never_waited_on(tmp_path: pathlib.Path) -> None:
    # Issue 12: a FIFO at session.json hung auth_status (and kitty-doctor) forever.
    import subprocess
    import sys

    (tmp_path / "auth").mkdir(mode=0o700)
    done = subprocess.run(
        [sys.executable, "-c", FIFO_CHILD, str(tmp_path / "auth")],
        capture_output=True,
        text=True,
        timeout=30,  # a hang cap: the bug was an endless open()
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "corrupt: file is a FIFO, not a regular file"
    assert lines[1].startswith("status: ")


def test_deeply_nested_json_is_corrupt_not_a_recursion_error(tmp_path: pathlib.Path) -> None:
    store = SessionStore(tmp_path / "auth")
    store.root.mkdir(mode=0o700)
    store.path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CorruptSession, match="nested too deeply"):
        store.read()


# ---- kitty-filelock's private writer and reader (issue 12) ------------------------------------


@posix_only
def test_session_file_is_0600_even_under_a_umask_that_takes_the_owners_bits(
    tmp_path: pathlib.Path,
) -> None:
    store = SessionStore(tmp_path / "home" / "auth")
    old = os.umask(0o277)
    try:
        store.write(make_session())
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600  # was 0400: unwritable by its owner
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700


@posix_only
@pytest.mark.parametrize("mode", [0o777, 0o775])
def test_an_auth_directory_others_can_write_is_refused(tmp_path: pathlib.Path, mode: int) -> None:
    store = SessionStore(tmp_path / "auth")
    store.root.mkdir()
    os.chmod(store.root, mode)
    session = make_session()
    with pytest.raises(StoreWriteFailed) as info:
        store.write(session)
    assert info.value.session == session  # the caller keeps working from memory
    text = str(info.value)
    assert str(store.root) in text
    assert f"{mode:04o}" in text
    assert f"chmod 700 {store.root}" in text
    assert session.refresh_token not in text
    assert type(info.value.__cause__).__name__ == "UnsafeDirectoryError"
    assert list(store.root.iterdir()) == []  # no secret went in


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELOOP is Linux's errno")
def test_a_symlink_at_the_session_path_is_never_followed_and_its_target_untouched(
    store: SessionStore, tmp_path: pathlib.Path
) -> None:
    from kitty_auth_refresh import AuthState, auth_status

    elsewhere = SessionStore(tmp_path / "elsewhere")
    elsewhere.write(make_session(session_id="planted"))
    store.root.mkdir(mode=0o700, parents=True)
    store.path.symlink_to(elsewhere.path)
    with pytest.raises(OSError, match="symbolic links"):  # was: the planted session, read
        store.read()
    assert auth_status(store).state is AuthState.UNREADABLE
    store.write(make_session(session_id="mine"))  # replaces the link, never writes through it
    assert not store.path.is_symlink()
    read = elsewhere.read()
    assert read is not None
    assert read.session_id == "planted"


@posix_only
def test_a_socket_at_the_session_path_is_corrupt_not_an_os_error(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    store.root.mkdir(mode=0o700, parents=True)
    with socket.socket(socket.AF_UNIX) as sock:
        # Bound by a relative name: a socket path is limited to ~108 bytes, a tmp path is not.
        monkeypatch.chdir(store.root)
        sock.bind(store.path.name)
        with pytest.raises(CorruptSession, match="file is a socket, not a regular file"):
            store.read()


def test_an_apps_store_lives_in_its_home(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: another app's profile names its home; kitty's variable is not consulted."""
    from kitty_daemon_identity import AppProfile, Family, PortRange

    acme = AppProfile("acme", families=(Family("sync", PortRange(18400, 18450), "1.0"),))
    monkeypatch.setenv("KITTY_HOME", str(tmp_path / "kitty"))
    monkeypatch.setenv("ACME_HOME", str(tmp_path / "acme"))
    assert SessionStore(profile=acme).path == tmp_path / "acme" / "auth" / "session.json"
    assert default_home(acme) == tmp_path / "acme"
    monkeypatch.setenv("ACME_HOME", "relative")
    with pytest.raises(ConfigError, match="ACME_HOME"):
        SessionStore(profile=acme)
    with pytest.raises(ValueError, match="not both"):
        SessionStore(tmp_path, profile=acme)


def test_store_errors_do_not_name_kitty(tmp_path: pathlib.Path) -> None:
    """An embedding app's users read these messages: no brand but the app's own."""
    from kitty_auth_refresh import CorruptSession, RefreshLockBusy, UnreadableSession

    for exc in (
        CorruptSession(tmp_path / "s.json", "bad"),
        UnreadableSession(tmp_path / "s.json", "EACCES"),
        RefreshLockBusy(),
    ):
        assert "kitty" not in str(exc).replace(str(tmp_path), "")


def test_a_manager_on_an_apps_store_names_the_apps_login_command(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kitty_auth_refresh import NotAuthenticated, SyncTokenManager, TokenEndpoint
    from kitty_daemon_identity import AppProfile, Family, PortRange

    acme = AppProfile(
        "acme",
        families=(Family("sync", PortRange(18400, 18450), "1.0"),),
        login_command="acme auth login",
    )
    monkeypatch.setenv("ACME_HOME", str(tmp_path / "acme"))
    monkeypatch.delenv("KITTY_LOGIN_COMMAND", raising=False)
    store = SessionStore(profile=acme)
    assert store.profile is acme
    assert SessionStore(tmp_path).profile is None
    with TokenEndpoint("http://127.0.0.1:9/token", "acme-cli") as endpoint:
        manager = SyncTokenManager(store, endpoint)
        with pytest.raises(NotAuthenticated, match="Run `acme auth login`"):
            manager.get_access_token()
        explicit = SyncTokenManager(store, endpoint, login_command="acme login --web")
        with pytest.raises(NotAuthenticated, match="acme login --web"):
            explicit.get_access_token()
