"""Packaging facts: no third-party dependency, the console script, the README example runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import tomllib
from importlib.metadata import distribution
from pathlib import Path

import pytest

import kitty_daemon_identity
from _didkit import HANG_CAP_S, free_port, request, shutdown
from kitty_daemon_identity import read_scope_key

PKG = Path(__file__).resolve().parents[1]


def test_no_third_party_runtime_dependencies() -> None:
    # Only the sibling that owns a fact it needs (private directories: kitty-filelock, itself
    # dependency-free); nothing from outside kitty.
    project = tomllib.loads((PKG / "pyproject.toml").read_text())["project"]
    assert project.get("dependencies", []) == ["kitty-filelock>=0.2,<1"]
    requires = distribution("kitty-daemon-identity").requires or []
    assert [r.split(">")[0].split("<")[0].strip() for r in requires] == ["kitty-filelock"]


def test_console_script_is_declared() -> None:
    project = tomllib.loads((PKG / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"kitty-daemon": "kitty_daemon_identity.__main__:main"}
    eps = distribution("kitty-daemon-identity").entry_points
    assert [(e.name, e.value) for e in eps if e.group == "console_scripts"] == [
        ("kitty-daemon", "kitty_daemon_identity.__main__:main")
    ]


def test_all_is_sorted_and_importable() -> None:
    names = kitty_daemon_identity.__all__
    assert len(names) == len(set(names))  # the order itself is enforced by ruff (RUF022)
    for name in names:
        assert hasattr(kitty_daemon_identity, name), name


def _readme_example(name: str = "embedding") -> str:
    text = (PKG / "README.md").read_text()
    block = re.search(
        rf"<!-- {name}-example:start -->\s*```python\n(.*?)```\s*<!-- {name}-example:end -->",
        text,
        re.S,
    )
    assert block is not None
    return block.group(1)


def test_readme_documents_the_health_contract() -> None:
    text = (PKG / "README.md").read_text()
    example = re.search(r"```json\n(.*?)```", text, re.S)
    assert example is not None
    payload = kitty_daemon_identity.parse_health(json.dumps(json.loads(example.group(1))).encode())
    assert isinstance(payload, kitty_daemon_identity.HealthPayload)
    for reason in kitty_daemon_identity.SkipReason:
        assert f"`{reason.value}`" in text


def test_readme_embedding_example_runs(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("KITTY_DAEMON_PORT", str(port))
    monkeypatch.setenv("KITTY_DAEMON_TOKEN", "readme-token")
    code = compile(_readme_example(), "README.md", "exec")
    namespace: dict[str, object] = {"__name__": "readme_example"}
    errors: list[BaseException] = []

    def target() -> None:
        try:
            exec(code, namespace)  # noqa: S102 - executing our own README example is the test
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG_CAP_S
    while True:  # bounded: until the example's server answers (same process, no ordering race)
        try:
            if request(port, "GET", "/api/health", timeout=1).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, f"README example never served: {errors}"
        assert thread.is_alive(), f"README example died: {errors}"
        time.sleep(0.01)
    assert "KITTY_DAEMON_TOKEN" not in os.environ
    key = read_scope_key(root)
    assert key is not None
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    body = json.dumps({"repo": "x"}).encode()
    resp = request(port, "POST", "/api/sync", headers=headers, body=body)
    assert resp.status == 202
    assert resp.json()["queued"] in (0, 1)
    jobs = namespace["jobs"]
    jobs.join()  # type: ignore[attr-defined]  # the example's queue.Queue
    assert "syncing ['repo']" in capsys.readouterr().out
    assert request(port, "GET", "/api/health").json()["package_version"] == "1.4.0"
    assert shutdown(port, "readme-token").status == 202
    thread.join(timeout=HANG_CAP_S)
    assert not thread.is_alive()
    assert not errors


def test_readme_profile_example_is_a_whole_daemon_of_another_app(tmp_path: Path) -> None:
    """The app-profile snippet, run as a script the way ensure_daemon spawns it."""
    script = tmp_path / "acme_daemon.py"
    script.write_text(_readme_example("profile"))
    root = tmp_path / "acme-home" / "daemon"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITTY_")}
    env["ACME_DAEMON_PORT"] = str(port)
    log = tmp_path / "daemon.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), f"--acme-daemon-root={root}", "--acme-daemon-exec=/x"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + HANG_CAP_S
        while True:
            try:
                health = request(port, "GET", "/api/health", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the README daemon never served"
                time.sleep(0.02)
        assert health.headers["server"] == "acme-daemon"
        assert health.json()["daemon_root"] == str(root.resolve())
        assert health.json()["package_version"] == "1.4.0"
        assert request(port, "GET", "/api/ping").status == 403
        key = read_scope_key(root)
        assert key is not None
        pong = request(port, "GET", "/api/ping", headers={"Authorization": f"Bearer {key}"})
        assert pong.json() == {"pong": True}
        assert shutdown(port, key).status == 202
        assert proc.wait(timeout=HANG_CAP_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_http_server_loads_on_first_use() -> None:
    """A cleaner imports the classifier and the state record, never a server (issue 15)."""
    import subprocess
    import sys

    code = (
        "import sys, kitty_daemon_identity as kdi\n"
        "before = sorted(m for m in ('http.server', 'importlib.metadata') if m in sys.modules)\n"
        "server = kdi.DaemonServer\n"
        "print(before, 'http.server' in sys.modules, server.__module__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.split() == ["[]", "True", "kitty_daemon_identity._server"]
    with pytest.raises(AttributeError, match="has no attribute 'DaemonServr'"):
        kitty_daemon_identity.DaemonServr  # noqa: B018 - the attribute access is the test


def test_every_exported_constant_is_read_only_and_says_how_to_tune_it() -> None:
    """Issue 12: an exported name either has an effect when changed or refuses the change."""
    constants = [n for n in kitty_daemon_identity.__all__ if n.isupper()]
    assert constants
    for name in constants:
        before = getattr(kitty_daemon_identity, name)
        with pytest.raises(AttributeError, match=f"{name} is a read-only default") as caught:
            setattr(kitty_daemon_identity, name, before)
        assert any(w in str(caught.value) for w in ("pass ", "set ", "fixed:"))
        assert getattr(kitty_daemon_identity, name) is before
