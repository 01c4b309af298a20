"""DOC-01 (read-only, offline), DOC-11 (no token in any output), DOC-12 (hostile proxy)."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import kitty_filelock
import kitty_orphan_sweep
from _doctorkit import ACCESS_TOKEN, REFRESH_TOKEN, run, run_process, write_session
from _procs import Daemon, ThirdParty, kill_holder_leaving_record
from kitty_daemon_identity import read_scope_key

pytestmark = pytest.mark.slow

SYNC = range(20400, 20450)
DASHBOARD = range(20450, 20550)


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under `root` with its mode, size and content hash."""
    out: dict[str, tuple[int, int, str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "-"
        out[str(path)] = (st.st_mode, st.st_size, digest)
    return out


@pytest.fixture
def busy_home(home: Path, spawn: Callable[..., Daemon]) -> Iterator[Path]:
    """A home with something in every section: session, stale lock record, singleton, orphans."""
    write_session(home)
    kill_holder_leaving_record(home / "auth" / "refresh.lock")
    spawn(20400).make_singleton()
    spawn(20401, extra=["--advertise-version", "3.2.2"])
    spawn(20402, markers=False)
    spawn(20451, family="dashboard")
    third = ThirdParty(20403)
    try:
        yield home
    finally:
        third.close()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args))
            return real(*args, **kwargs)

        return recorded

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


def test_default_run_is_read_only_and_offline(
    busy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(busy_home)
    rec = Recorder()
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, rec.wrap(name, getattr(socket.socket, name)))
    for mod, name in (
        (socket, "getaddrinfo"),
        (socket, "create_connection"),
        (os, "kill"),
        (os, "killpg"),
        (os, "unlink"),
        (os, "remove"),
        (os, "replace"),
        (os, "rename"),
        (os, "truncate"),
        (os, "ftruncate"),
        (Path, "unlink"),
        (Path, "replace"),
        (Path, "rename"),
        (Path, "write_bytes"),
        (Path, "write_text"),
        (psutil.Process, "send_signal"),
        (psutil.Process, "terminate"),
        (psutil.Process, "kill"),
        (kitty_filelock, "force_release"),
        (kitty_orphan_sweep, "sweep"),
    ):
        monkeypatch.setattr(
            mod, name, rec.wrap(f"{getattr(mod, '__name__', mod)}.{name}", getattr(mod, name))
        )

    for argv in (["--json"], [], ["--verbose"], ["--json", "--family", "sync"]):
        result = run(*argv)
        assert result.code in (0, 1), result

    connects = rec.named("connect") + rec.named("connect_ex")
    assert connects, "the scan and the daemon probe must have connected"
    for call in connects:
        host, port = call[1]
        assert host == "127.0.0.1"
        assert port in SYNC or port in DASHBOARD
    for name, call in rec.calls:
        if name in ("socket.getaddrinfo", "socket.create_connection"):
            target = call[0][0] if name == "socket.create_connection" else call[0]
            assert target in ("127.0.0.1", "::1"), (name, call)  # loopback literal, never DNS
    forbidden = [
        n
        for n, _ in rec.calls
        if n not in ("connect", "connect_ex", "socket.getaddrinfo", "socket.create_connection")
    ]
    assert forbidden == []
    assert _snapshot(busy_home) == before


def test_family_sync_never_connects_to_dashboard_ports(
    busy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = Recorder()
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, rec.wrap(name, getattr(socket.socket, name)))
    assert run("--json", "--family", "sync").code in (0, 1)
    ports = {args[1][1] for args in rec.named("connect") + rec.named("connect_ex")}
    assert ports
    assert ports <= set(SYNC)


def _all_modes(home: Path) -> list[tuple[str, str]]:
    outputs: list[tuple[str, str]] = []
    for args in (
        [],
        ["--json"],
        ["--verbose"],
        ["--json", "--verbose"],
        ["--unstick-lock"],
        ["--json", "--unstick-lock", "--stuck-threshold", "0"],
        ["--reset", "--family", "dashboard"],
        ["--json", "--reset", "--force", "--family", "sync"],
        ["--bogus"],
        ["--json", "--bogus"],
    ):
        result = run(*args)
        outputs.append((result.out, result.err))
    return outputs


def test_no_token_or_key_in_any_output(busy_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = read_scope_key((busy_home / "daemon").resolve())
    assert key is not None
    secrets = [ACCESS_TOKEN, REFRESH_TOKEN, key]
    outputs = _all_modes(busy_home)

    # A crashing section whose error message carries the secrets is masked too.
    def leaky(*args: object, **kwargs: object) -> list[object]:
        raise RuntimeError(f"scan failed near {ACCESS_TOKEN} and {key}")

    monkeypatch.setattr(kitty_orphan_sweep, "scan_listeners", leaky)
    for args in ([], ["--json"], ["--verbose"]):
        result = run(*args)
        assert result.code == 2
        outputs.append((result.out, result.err))
    assert any("scan failed near ***" in out + err for out, err in outputs)
    for out, err in outputs:
        for secret in secrets:
            assert secret not in out
            assert secret not in err


class CountingProxy(ThirdParty):
    """A hostile proxy: answers 502 to everything and counts connections."""

    def __init__(self, port: int) -> None:
        super().__init__(port, status=b"502 Bad Gateway")


_VOLATILE = ("generated_at", "duration_ms", "age_s", "idle_s", "expires_in_s", "holder_age_s")


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _stable(v) for k, v in value.items() if not any(k.endswith(s) for s in _VOLATILE)
        }
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def test_hostile_proxy_changes_nothing_and_sees_nothing(busy_home: Path) -> None:
    env = dict(os.environ)
    baseline = run_process("--json", env=env).json()
    proxy = CountingProxy(20590)
    try:
        url = "http://127.0.0.1:20590"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            env[name] = url
            env[name.lower()] = url
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        proxied = run_process("--json", env=env).json()
    finally:
        proxy.close()
    assert proxy.connections == 0
    assert _stable(proxied) == _stable(baseline)
