"""Nothing of kitty's brand reaches acme's users (issue 13): everything they can see is grepped.

Seen by a user: every ``--help``, the doctor's human and JSON output, messages and errors,
the daemon's argv in ``ps`` and its environment, its HTTP headers and health, the files in the
home. Paths of this test machine (the venv, the temp dirs) are not acme's to choose: they are
replaced before the check.
"""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

import pytest

from conftest import Acme, AcmeServer


def _scrub(text: str) -> str:
    paths = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve()), *sys.path}
    for path in sorted((p for p in paths if len(p) > 1), key=len, reverse=True):
        text = text.replace(path, "<path>")
    return text


def assert_unbranded(where: str, text: str) -> None:
    scrubbed = _scrub(text)
    assert "kitty" not in scrubbed.lower(), f"{where} shows kitty's brand:\n{scrubbed}"


def _daemon_pid(home: Path) -> int:
    marker = f"--acme-daemon-root={(home / 'daemon').resolve()}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("no acme daemon is running")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["auth", "--help"],
        ["auth", "login", "--help"],
        ["sync", "--help"],
        ["whoami", "--help"],
        ["auth", "doctor", "--help"],
        ["auth", "doctor", "--version"],
    ],
)
def test_help_is_acmes(acme: Acme, args: list[str]) -> None:
    done = acme.run(*args, check=True)
    assert_unbranded(" ".join(args), done.stdout + done.stderr)
    assert "acme" in done.stdout


def test_a_whole_session_shows_only_acme(acme: Acme, acme_server: AcmeServer) -> None:
    seen: list[tuple[str, str]] = []

    def run(*args: str, code: int | None = 0) -> str:
        done = acme.run(*args)
        if code is not None:
            assert done.returncode == code, (args, done.stdout, done.stderr)
        seen.append((" ".join(args), done.stdout + done.stderr))
        return done.stdout + done.stderr

    # Before login: the API call and the doctor say how to sign in.
    assert "acme auth login" in run("whoami", code=1)
    doctor = run("auth", "doctor", code=1)
    assert "KD101 no_session: no acme session at" in doctor
    assert "→ acme auth login" in doctor
    assert "invalid_grant" in run("auth", "login", "--username", "u", "--password", "no", code=1)
    # Signed in: the API works through TokenAuth, the session lives in acme's home.
    run("auth", "login", "--username", "u", "--password", "right")
    assert (acme.home / "auth" / "session.json").is_file()
    assert run("whoami").strip() == "wile"
    # The daemon: spawned once, then reused; its routes answer through the handle's client.
    assert run("sync", "note-1").strip() == "synced 1"
    assert run("sync", "note-2").strip() == "synced 2"
    # What `ps`, /proc and an HTTP client show of the daemon.
    pid = _daemon_pid(acme.home)
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    seen.append(("daemon argv", argv))
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = sorted(e.split(b"=", 1)[0].decode() for e in environ if e)
    assert "ACME_DAEMON_PORT" in names
    seen.append(("daemon environment", " ".join(names)))
    state = json.loads((acme.home / "daemon" / "sync-state.json").read_text())
    conn = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=10)
    conn.request("GET", "/api/health")
    response = conn.getresponse()
    seen.append(("daemon HTTP", f"{response.getheaders()} {response.read().decode()}"))
    assert response.getheader("Server") == "acme-daemon"
    conn.close()
    # The doctor on that state: acme's daemon is healthy; JSON names acme's doctor; a
    # remediation repeats acme's doctor command; a bad option keeps the exit code 2.
    report = run("auth", "doctor", "--verbose")
    assert f"sync: pid {pid} port {state['port']} v1.4.0 healthy" in report
    doc = json.loads(run("auth", "doctor", "--json"))
    assert doc["tool"] == {
        "name": "acme auth doctor",
        "version": "1.4.0",
        "packages": {"acme-cli": "1.4.0"},
    }
    assert doc["exit_code"] == 0
    assert doc["daemons"]["sync"]["health"] == "healthy"
    assert "acme auth doctor:" in run("auth", "doctor", "--force", code=2)
    assert json.loads(run("auth", "doctor", "--json", "--home", "rel", code=2))["exit_code"] == 2
    assert "acme auth doctor --reset" in run("auth", "doctor", "--expected-daemon-version", "9")
    files = sorted(str(p.relative_to(acme.home)) for p in acme.home.rglob("*"))
    seen.append(("files in the home", " ".join(files)))
    # Configuration errors name acme's variables.
    ports, acme.env["ACME_SYNC_PORTS"] = acme.env["ACME_SYNC_PORTS"], "nonsense"
    assert "ACME_SYNC_PORTS" in run("sync", code=1)
    acme.env["ACME_SYNC_PORTS"] = ports
    acme.env["ACME_HOME"] = "relative/home"
    assert "ACME_HOME" in run("sync", code=1)
    for where, text in seen:
        assert_unbranded(where, text)
