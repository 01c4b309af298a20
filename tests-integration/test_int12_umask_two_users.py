"""INT-12 (issue 12): the umask-000 chain, as two real users.

Issue 12 reproduced it: with umask 000 kitty created the home 0777, and another local user then
planted `auth/refresh.lock -> victim file` (the victim's next login truncated it), deleted the
victim's `session.json`, and swapped `daemon/` for one holding a planted `state.json`. Here the
victim (uid 65534) runs kitty's own writers under umask 000 in a shared sticky directory, the
attacker (uid 65533) then tries each step of that chain, and the victim's kitty runs again.
A second case: the attacker makes the victim's home first, world-writable; kitty refuses to
keep secrets in it (a typed error naming path, mode, owner and the fix) instead of using it.

Both users run the system interpreter with this venv's packages (the venv's own interpreter
lives under root's 0700 home), so the test needs root, setpriv and a same-version python.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from _harness import as_user, second_user_python

VICTIM, ATTACKER = 65534, 65533
#: None on a machine that cannot run a second uid with this venv's packages.
PYTHON = second_user_python(same_version=True)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(PYTHON is None, reason="needs root, setpriv and a same-version python"),
]

#: The victim's kitty under umask 000: make the daemon root and its scope key, log in
#: (session.json), take the refresh lock. Prints the modes it got, or the error it refused with.
VICTIM_RUN = r"""
import datetime as dt, json, os, site, stat, sys
home = sys.argv[1]
for entry in sys.argv[2:]:
    site.addsitedir(entry)
os.umask(0)
from kitty_auth_refresh import Session, SessionStore
from kitty_daemon_identity import daemon_root, ensure_scope_key
from kitty_filelock import MachineFileLock
now = dt.datetime.now(dt.UTC)
out = {}
try:
    # The daemon side first, as when a CLI's first act spawns its daemon: it made the home.
    root = daemon_root(home)
    ensure_scope_key(root)
    store = SessionStore(os.path.join(home, "auth"))
    if store.read() is None:
        store.write(Session(session_id="victim", access_token="a" * 20, refresh_token="r" * 20,
                            access_expires_at=now + dt.timedelta(hours=1), issued_at=now))
    out["session_id"] = store.read().session_id
    with MachineFileLock(os.path.join(home, "auth", "refresh.lock")):
        pass
    names = ("", "auth", "auth/session.json", "auth/refresh.lock", "daemon", "daemon/scope.key")
    for name in names:
        out[name or "home"] = oct(stat.S_IMODE(os.lstat(os.path.join(home, name)).st_mode))
except Exception as exc:
    cause = exc.__cause__ or exc
    out["error"] = type(exc).__name__
    out["cause"] = type(cause).__name__
    out["message"] = str(cause)
print(json.dumps(out))
"""

#: The attacker's chain: each step's outcome (the exception name, or "done").
ATTACKER_RUN = r"""
import json, os, sys
home, victim_file = sys.argv[1], sys.argv[2]
def attempt(step):
    try:
        step()
        return "done"
    except OSError as exc:
        return type(exc).__name__
planted = os.path.join(os.path.dirname(home), "planted-daemon")
os.makedirs(planted, exist_ok=True)
with open(os.path.join(planted, "state.json"), "w") as fh:
    fh.write("{}")
print(json.dumps({
    "list_home": attempt(lambda: os.listdir(home)),
    "plant_lock_symlink": attempt(
        lambda: (os.unlink(os.path.join(home, "auth", "refresh.lock")),
                 os.symlink(victim_file, os.path.join(home, "auth", "refresh.lock")))),
    "delete_session": attempt(lambda: os.unlink(os.path.join(home, "auth", "session.json"))),
    "swap_daemon_dir": attempt(lambda: os.rename(os.path.join(home, "daemon"), home + ".old")),
    "plant_daemon_dir": attempt(lambda: os.rename(planted, os.path.join(home, "daemon2"))),
}))
"""


def _as(uid: int, script: str, *args: str) -> dict[str, str]:
    done = subprocess.run(
        [
            *as_user(uid),
            *(str(PYTHON), "-c", script, *args),
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"},
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sticky, world-writable directory like /tmp: both users may create entries in it."""
    base = Path(tempfile.mkdtemp(prefix="kitty-int12-"))
    try:
        os.chmod(base, 0o1777)  # noqa: S103 - the shared /tmp-like place the chain needs
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_under_umask_000_another_user_can_break_no_link_of_the_chain(shared: Path) -> None:
    home = shared / "victim-home"
    victim_file = shared / "victim-settings.conf"
    victim_file.write_text("the victim's settings\n", encoding="utf-8")
    os.chown(victim_file, VICTIM, VICTIM)
    packages = site.getsitepackages()

    first = _as(VICTIM, VICTIM_RUN, str(home), *packages)
    assert "error" not in first, first
    assert first["session_id"] == "victim"
    assert {k: first[k] for k in ("home", "auth", "daemon")} == {
        "home": "0o700",
        "auth": "0o700",
        "daemon": "0o700",
    }
    assert {k: first[k] for k in ("auth/session.json", "auth/refresh.lock")} == {
        "auth/session.json": "0o600",
        "auth/refresh.lock": "0o600",
    }
    assert first["daemon/scope.key"] == "0o600"

    attacks = _as(ATTACKER, ATTACKER_RUN, str(home), str(victim_file))
    assert attacks == {
        "list_home": "PermissionError",
        "plant_lock_symlink": "PermissionError",
        "delete_session": "PermissionError",
        "swap_daemon_dir": "PermissionError",
        "plant_daemon_dir": "PermissionError",
    }

    again = _as(VICTIM, VICTIM_RUN, str(home), *packages)
    assert again.get("session_id") == "victim", again  # the session was not lost
    assert victim_file.read_text(encoding="utf-8") == "the victim's settings\n"
    assert not (home / "auth" / "refresh.lock").is_symlink()


def test_a_home_another_user_made_first_is_refused_not_used(shared: Path) -> None:
    """The attacker creates the victim's KITTY_HOME before the victim's first login, 0777 and
    their own: kitty never writes the session into it, and says what to do."""
    home = shared / "victim-home"
    done = subprocess.run(
        [
            *as_user(ATTACKER),
            *("sh", "-c", f"umask 000 && mkdir -p {home}/auth"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = _as(VICTIM, VICTIM_RUN, str(home), *site.getsitepackages())
    assert result.get("cause") == "UnsafeDirectoryError", result
    message = result["message"]
    assert str(home / "auth") in message
    assert f"owned by uid {ATTACKER}, not by you (uid {VICTIM})" in message
    assert "0777" in message
    assert "KITTY_HOME" in message
    assert not (home / "auth" / "session.json").exists()
