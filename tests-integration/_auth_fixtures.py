"""The auth matrices' world, on top of `_harness.py`: the test authorization servers (their
admin API), worker subprocesses sharing one session, sessions and the token-leak checks.

Ordering between processes uses files only (`_harness.wait_for_file`): bounded polling with a
deadline, never a sleep that hopes the other side is done. Every process started here is reaped
in a `finally`, and every worker's output goes to a file the token-leak check greps.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import httpx

from _harness import (
    STDERR,
    child_argv,
    first_line,
    log_tail,
    mask_secrets,
    reap,
    spawn,
    stop_by_eof,
)

if TYPE_CHECKING:
    from kitty_auth_refresh import Session

CLIENT_ID: Final = "kitty-cli"
USERNAME: Final = "alice"
PASSWORD: Final = "wonderland"


def token_hash(token: str) -> str:
    """The server's request log identifies refresh tokens by this hash (see _oauth_server.py)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def material_fp(session: Session | None) -> str | None:
    """Material identity (session_id + refresh token) as a short fingerprint tests can compare."""
    if session is None:
        return None
    raw = f"{session.session_id}\0{session.refresh_token}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def session_from_token(
    token: Mapping[str, Any], *, expired: bool = False, remaining_s: float | None = None
) -> Session:
    """A kitty Session for a token response, as received now.

    `expired` backdates it by one lifetime; `remaining_s` backdates it so that only that many
    seconds of its lifetime are left (still valid, but inside the refresh margin).
    """
    import datetime as dt

    from kitty_auth_refresh import Session

    lifetime = dt.timedelta(seconds=int(token["expires_in"]))
    issued = dt.datetime.now(dt.UTC)
    if expired:
        issued -= lifetime + dt.timedelta(seconds=1)
    elif remaining_s is not None:
        issued -= lifetime - dt.timedelta(seconds=remaining_s)
    return Session(
        session_id=token["session_id"],
        access_token=token["access_token"],
        refresh_token=token["refresh_token"],
        access_expires_at=issued + lifetime,
        issued_at=issued,
        scope=token.get("scope"),
        token_type=token.get("token_type", "Bearer"),
        subject=token.get("subject"),
        email=token.get("email"),
    )


def login_to_home(
    server: OAuthServer, home: Path, *, expired: bool = False, remaining_s: float | None = None
) -> Session:
    """Log in with the password grant and persist the session under `home`, as a CLI login would."""
    from kitty_auth_refresh import SessionStore

    session = session_from_token(server.login(), expired=expired, remaining_s=remaining_s)
    SessionStore(home / "auth").write(session)
    return session


def read_home(home: Path) -> Session | None:
    from kitty_auth_refresh import SessionStore

    return SessionStore(home / "auth").read()


def session_file(home: Path) -> Path:
    return home / "auth" / "session.json"


@dataclass
class AdminServer:
    """Handle on one test authorization server subprocess (loopback, ephemeral port) and the
    admin routes both of ours serve (counters, hashed request log, faults, leak check)."""

    proc: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    client_key: Any = None  # the private key registered for the private_key_jwt client
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, trust_env=False, timeout=30.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counters(self) -> dict[str, int]:
        return dict(self.client.get("/admin/counters").raise_for_status().json())

    def log(self) -> list[dict[str, Any]]:
        return list(self.client.get("/admin/log").raise_for_status().json())

    def fault(self, **changes: Any) -> dict[str, Any]:
        return dict(self.client.post("/admin/fault", json=changes).raise_for_status().json())

    def leaks(self, paths: Sequence[Path]) -> tuple[dict[str, int], int]:
        """(file → how many tokens issued since the last reset it contains, tokens issued)."""
        body = {"paths": [str(p) for p in paths]}
        answer = self.client.post("/admin/leaks", json=body).raise_for_status().json()
        return dict(answer["leaks"]), int(answer["issued"])

    def release(self) -> None:
        self.client.post("/admin/release").raise_for_status()

    def stop(self) -> None:
        self.client.close()
        stop_by_eof(self.proc)  # EOF on its stdin: the server exits on its own


_Server = TypeVar("_Server", bound=AdminServer)


@contextmanager
def running_admin_server(
    kind: type[_Server], argv: Sequence[str], workdir: Path, *, name: str, cwd: Path | None = None
) -> Iterator[_Server]:
    """Start one of our authorization servers (`argv`: it prints `{"port": N}` once it accepts
    connections and exits at EOF on its stdin) with a fresh key registered for its
    private_key_jwt client (kept in `client_key`); always reaped on exit."""
    from _jws import client_key_pair

    workdir.mkdir(parents=True, exist_ok=True)
    key, jwks = client_key_pair(workdir)
    stderr_path = workdir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.err"
    proc = spawn(
        [*argv, "--client-jwks", str(jwks)],
        stderr_path=stderr_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=cwd,
    )
    try:
        port = int(json.loads(first_line(proc, name=name, stderr_path=stderr_path))["port"])
        server = kind(proc=proc, port=port, stderr_path=stderr_path, client_key=key)
    except BaseException:
        reap(proc)
        raise
    try:
        yield server
    finally:
        server.stop()


@dataclass
class OAuthServer(AdminServer):
    """Handle on one `_oauth_server.py` subprocess (Authlib)."""

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/me"

    def revoke(self, session_id: str) -> None:
        self.client.post("/admin/revoke", json={"session_id": session_id}).raise_for_status()

    def reset(self) -> None:
        self.client.post("/admin/reset").raise_for_status()

    def login(self) -> dict[str, Any]:
        """Password grant: the raw token response (access, refresh, expires_in, session_id...)."""
        response = self.client.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": USERNAME,
                "password": PASSWORD,
                "client_id": CLIENT_ID,
                "scope": "openid offline_access",
            },
        )
        response.raise_for_status()
        return dict(response.json())

    def raw_refresh(self, refresh_token: str) -> httpx.Response:
        """A bare RFC 6749 refresh request (what a naive client sends)."""
        return self.client.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": CLIENT_ID,
            },
        )

    def me(self, access_token: str) -> int:
        """Status code of the protected call with this access token."""
        headers = {"Authorization": f"Bearer {access_token}"}
        return self.client.get("/api/me", headers=headers).status_code

    def presentations(self, refresh_token: str) -> int:
        """How many refresh requests presented this token (from the server's hashed log)."""
        wanted = token_hash(refresh_token)
        return sum(1 for entry in self.log() if entry["rt"] == wanted)


def oauth_server_argv(*args: str) -> list[str]:
    """`_child.py oauth-server ARGS`: the Authlib server (`_oauth_server.py`)."""
    return child_argv("oauth-server", *args)


@contextmanager
def running_server(workdir: Path, *, access_ttl: int = 300) -> Iterator[OAuthServer]:
    """The Authlib server on an ephemeral loopback port (see `running_admin_server`)."""
    argv = oauth_server_argv("--port", "0", "--access-ttl", str(access_ttl))
    with running_admin_server(OAuthServer, argv, workdir, name="oauth-server") as server:
        yield server


class Provider(Protocol):
    """What a worker needs to know about a server: the Authlib one or oidc-provider."""

    @property
    def token_url(self) -> str: ...

    @property
    def api_url(self) -> str: ...


@dataclass
class Worker:
    """One `_child.py auth` subprocess (`_auth_workers.py`); its stdout+stderr go to `log_path`."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    result_path: Path

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            reap(self.proc)
            raise AssertionError(
                f"worker {self.name} hung; log tail: {log_tail(self.log_path)}"
            ) from None

    def result(self) -> dict[str, Any]:
        if not self.result_path.exists():
            raise AssertionError(
                f"worker {self.name} wrote no result (exit {self.proc.returncode}); "
                f"log tail: {log_tail(self.log_path)}"
            )
        return dict(json.loads(self.result_path.read_text()))


def start_worker(
    name: str,
    role: str,
    workdir: Path,
    *,
    home: Path,
    server: Provider,
    args: Sequence[str] = (),
    client_id: str = CLIENT_ID,
) -> Worker:
    """Start `_child.py auth <role>` as OAuth client `client_id` (public: auth method none);
    the result JSON lands in `<workdir>/<name>.result.json`."""
    log_path = workdir / f"{name}.log"
    result_path = workdir / f"{name}.result.json"
    argv = child_argv(
        "auth",
        role,
        "--token-url",
        server.token_url,
        "--api-url",
        server.api_url,
        "--client-id",
        client_id,
        "--result",
        str(result_path),
        *args,
    )
    proc = spawn(argv, stderr_path=log_path, stdout=STDERR, env={"KITTY_HOME": str(home)})
    return Worker(name=name, proc=proc, log_path=log_path, result_path=result_path)


@contextmanager
def reaped(workers: list[Worker]) -> Iterator[list[Worker]]:
    """Whatever happens in the block, every worker in the (growing) list is reaped."""
    try:
        yield workers
    finally:
        for worker in workers:
            reap(worker.proc)


def tokens_of(*sessions: Session | None) -> list[str]:
    """Every token value of these sessions (what the leak check looks for)."""
    return [t for s in sessions if s is not None for t in (s.access_token, s.refresh_token)]


def assert_no_secret_in(text: str, secrets: Sequence[str], where: str) -> None:
    """Fail naming only the index of a leaked token: the failure message must not leak it."""
    assert secrets, "leak check needs the tokens it is looking for"
    leaked = [i for i, secret in enumerate(secrets) if secret in text or token_hash(secret) in text]
    assert not leaked, f"token(s) #{leaked} leaked into {where}"


def same_token(a: str, b: str) -> bool:
    """Token equality as a bool (the demo's checks). NOT for a test's `assert`: pytest's
    introspection prints a failing call's arguments; use `assert_same_token` there."""
    return a == b


# This module is not rewritten by pytest (only test modules and conftest are), so the failure
# messages below are all a failing test shows: a label, never the values.
def assert_same_token(actual: str, expected: str, what: str) -> None:
    """`actual == expected` for token values; a failure names `what`, never a token."""
    if actual != expected:
        raise AssertionError(f"{what}: not the expected token (values withheld)")


def assert_other_token(actual: str, previous: str, what: str) -> None:
    """`actual != previous` for token values; a failure names `what`, never a token."""
    if actual == previous:
        raise AssertionError(f"{what}: still the previous token (value withheld)")


def assert_file_unchanged(path: Path, before: bytes, what: str) -> None:
    """Byte-for-byte equality of a session file; a failure shows sizes, never the content."""
    now = path.read_bytes() if path.exists() else None
    if now != before:
        size = "missing" if now is None else f"{len(now)} bytes"
        raise AssertionError(f"{what}: {path.name} changed ({len(before)} bytes -> {size})")


def assert_output_has(text: str, needle: str, what: str, *, present: bool = True) -> None:
    """`needle in text` (or not, with present=False) for a process's output; a failure shows
    the output's end with secret-shaped values masked (pytest would show it raw)."""
    if (needle in text) != present:
        verb = "lacks" if present else "contains"
        raise AssertionError(f"{what} {verb} {needle!r}:\n{mask_secrets(text[-3000:])}")


def assert_no_token_in_logs(paths: Sequence[Path], tokens: Sequence[str]) -> None:
    """AUTH-27 for the live suite: no captured worker output contains any token we saw."""
    for path in paths:
        assert_no_secret_in(path.read_text(errors="replace"), tokens, path.name)
