"""``auth_status`` reads disk on every call and never shows a token (AUTH-08)."""

from __future__ import annotations

import datetime as dt
import errno
import os
import pathlib
import pickle
import shutil
import site
import subprocess
import sys
import tempfile

import pytest

from _authkit import T0, make_session
from kitty_auth_refresh import AuthState, SessionStore, UnreadableSession, auth_status


def test_states_follow_the_file(store: SessionStore) -> None:
    assert auth_status(store, now=T0).state is AuthState.NOT_AUTHENTICATED

    session = make_session(ttl_s=120, refresh_expires_at=T0 + dt.timedelta(hours=1))
    store.write(session)
    status = auth_status(store, now=T0)
    assert status.state is AuthState.AUTHENTICATED
    assert status.session_hash == session.session_hash
    assert len(status.session_hash or "") == 8
    assert (status.subject, status.email) == (session.subject, session.email)
    assert status.access_expires_in_s == 120
    assert status.refresh_expires_in_s == 3600
    assert status.path == str(store.path)
    assert session.access_token not in repr(status)
    assert session.refresh_token not in repr(status)

    # An expired access token is routine; only a known refresh expiry in the past is "expired".
    assert auth_status(store, now=T0 + dt.timedelta(minutes=30)).state is AuthState.AUTHENTICATED
    assert auth_status(store, now=T0 + dt.timedelta(hours=2)).state is AuthState.EXPIRED

    store.write(make_session())  # server-managed refresh lifetime
    assert auth_status(store, now=T0).refresh_expires_in_s is None

    store.path.write_text("{broken")
    status = auth_status(store, now=T0)
    assert status.state is AuthState.CORRUPT
    assert status.error is not None
    assert "JSON" in status.error
    assert store.path.read_text() == "{broken"


def test_default_store_and_clock(home: pathlib.Path) -> None:
    SessionStore().write(make_session(now=dt.datetime.now(dt.UTC), ttl_s=3600))
    status = auth_status()
    assert status.state == "authenticated"
    assert status.path == str(home / "auth" / "session.json")
    assert status.access_expires_in_s is not None
    assert 3500 < status.access_expires_in_s <= 3600


# ---- unreadable is not corrupt (issue 12) ------------------------------------------------------

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NOBODY = 65534
#: A second uid needs root, setpriv and an interpreter `nobody` may run (this venv's may live
#: under a 0700 home) of the same minor version, so this venv's packages import in it.
SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_matches() -> bool:
    if not (ROOT and shutil.which("setpriv") and os.access(SYSTEM_PYTHON, os.X_OK)):
        return False
    done = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() == str(sys.version_info[:2])


AS_NOBODY_STATUS = r"""
import site, sys
for entry in sys.argv[2:]:
    site.addsitedir(entry)  # this venv's packages, .pth files (the workspace members) included
from kitty_auth_refresh import SessionStore, auth_status
status = auth_status(SessionStore(sys.argv[1]))
print(status.state.value, status.error, sep="|")
"""


@pytest.mark.skipif(
    not _system_python_matches(), reason="needs root, setpriv, a same-version python"
)
@pytest.mark.parametrize(
    ("file_mode", "error"),
    [(0o600, "Permission denied"), (0o644, "is owned by uid 0, not by you (uid 65534)")],
    ids=["eacces", "foreign-owner"],
)
def test_a_session_another_user_may_not_read_is_unreadable_not_corrupt(
    file_mode: int, error: str
) -> None:
    """`sudo <app> login` leaves a root-owned session: as that user it used to raise
    PermissionError out of auth_status (EACCES) or be used as theirs (0644)."""
    # A directory `nobody` can traverse: pytest's tmp_path lives under a 0700 directory.
    base = pathlib.Path(tempfile.mkdtemp(prefix="kitty-unreadable-"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - traversable by the second uid, on purpose
        store = SessionStore(base / "auth")
        store.write(make_session())
        os.chmod(store.root, 0o755)  # noqa: S103 - same
        os.chmod(store.path, file_mode)
        before = store.path.read_bytes()
        done = subprocess.run(
            [
                *AS_NOBODY,
                *(SYSTEM_PYTHON, "-c", AS_NOBODY_STATUS, str(store.root)),
                *site.getsitepackages(),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"unreadable|{error}"
        assert store.path.read_bytes() == before  # never renamed, never rewritten
    finally:
        shutil.rmtree(base)


AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.mark.skipif(not ROOT, reason="needs root to plant another user's file")
def test_another_users_session_is_unreadable_with_the_chown_remedy(store: SessionStore) -> None:
    session = make_session()
    store.write(session)
    os.chown(store.path, NOBODY, NOBODY)
    with pytest.raises(UnreadableSession) as info:
        store.read()
    err = info.value
    assert isinstance(err, PermissionError)  # `except OSError` callers see what they saw
    assert err.errno == errno.EACCES
    assert err.strerror == err.reason == f"is owned by uid {NOBODY}, not by you (uid 0)"
    assert f"chown $(id -u) {store.path} && chmod 600 {store.path}" in str(err)
    assert session.refresh_token not in str(err)
    status = auth_status(store, now=T0)
    assert (status.state, status.error) == (AuthState.UNREADABLE, err.reason)
    assert status.subject is None
    clone = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert (clone.path, clone.reason, str(clone)) == (err.path, err.reason, str(err))


def test_a_path_that_cannot_be_reached_is_unreadable(tmp_path: pathlib.Path) -> None:
    (tmp_path / "auth").write_text("")  # a file where the directory should be: ENOTDIR
    status = auth_status(SessionStore(tmp_path / "auth"), now=T0)
    assert status.state is AuthState.UNREADABLE
    assert status.error == "Not a directory"
