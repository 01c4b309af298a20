"""Worker processes for the auth matrices: ``python _child.py auth <role> [options]``.

Each worker uses the shared session in ``$KITTY_HOME/auth`` exactly as a real CLI or daemon
would (kitty_auth_refresh's public API only), logs at DEBUG to its stdout/stderr (captured by
the test to prove no token leaks), orders itself against other processes with files only, and
writes what it saw to ``--result`` as JSON (outcomes, material fingerprints, status codes —
never a token).

Roles:
  manager      SyncTokenManager: load the session, optionally touch --ready, wait for --wait,
               then --action (refresh_force | refresh_if_needed | get_token), call GET /api/me
  transaction  run_refresh_transaction once on the session loaded before --ready/--wait
  naive        the negative control: no lock, refresh with the in-memory token, delete the file
               on invalid_grant (what the incident's client did)
  soak_cli     INT-07 short-lived CLI: load, get a token, one protected call, exit
  soak_daemon  INT-07 long-lived: keep one manager, loop get-token + protected call until --stop
  soak_async   long-lived asyncio service: one TokenManager shared by --tasks concurrent tasks,
               each looping get-token + protected call until --stop
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

from _auth_fixtures import CLIENT_ID, material_fp
from _harness import wait_for_file
from kitty_auth_refresh import (
    KittyAuthError,
    RefreshResult,
    SessionStore,
    SyncTokenManager,
    TokenEndpoint,
    TokenManager,
    run_refresh_transaction,
)

LOGIN_COMMAND: Final = "kitty-demo login"


def touch(path: Path | None) -> None:
    if path is not None:
        path.touch()


def store() -> SessionStore:
    return SessionStore()  # <KITTY_HOME>/auth, resolved from the environment at call time


# One API client per process, built before any token is fetched: building it costs CPU (SSL
# context) that would otherwise sit between getting a 2 s token and using it.
_API: httpx.Client | None = None


def protected_call(api_url: str, access_token: str) -> int:
    warm_api_client()
    assert _API is not None
    headers = {"Authorization": f"Bearer {access_token}"}
    return _API.get(api_url, headers=headers).status_code


def warm_api_client() -> None:
    global _API  # one per worker process, like a real app's HTTP client
    if _API is None:
        _API = httpx.Client(trust_env=False, timeout=10.0)


def describe(result: RefreshResult | None) -> dict[str, Any]:
    if result is None:
        return {"outcome": None}
    return {
        "outcome": result.outcome.value,
        "network_call": result.network_call,
        "held_s": result.held_s,
        "waited_s": result.waited_s,
        "cause": result.cause.value if result.cause is not None else None,
        "error_kind": result.error_kind,
        "retry_after": result.retry_after,
        "material": material_fp(result.session),
    }


def error_info(exc: BaseException) -> dict[str, Any]:
    return {"error_type": type(exc).__name__, "error": str(exc)}


def manager_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_hold": args.max_hold, "login_command": LOGIN_COMMAND}
    if args.margin is not None:
        kwargs["refresh_margin"] = args.margin
    if args.jitter is not None:
        kwargs["jitter"] = args.jitter
    return kwargs


def make_manager(args: argparse.Namespace, st: SessionStore) -> SyncTokenManager:
    endpoint = TokenEndpoint(args.token_url, args.client_id)
    return SyncTokenManager(st, endpoint, **manager_kwargs(args))


def role_manager(args: argparse.Namespace) -> dict[str, Any]:
    st = store()
    manager = make_manager(args, st)
    out: dict[str, Any] = {}
    if args.preload:
        manager.get_access_token()  # loads the session into memory (fresh: no lock, no network)
    out["loaded"] = material_fp(manager.session)
    touch(args.ready)
    if args.wait:
        wait_for_file(args.wait)
    try:
        if args.action == "refresh_force":
            out.update(describe(manager.refresh_if_needed(force=True)))
        elif args.action == "refresh_if_needed":
            out.update(describe(manager.refresh_if_needed()))
        token = manager.get_access_token()
        out["api_status"] = protected_call(args.api_url, token)
    except KittyAuthError as exc:
        out.update(error_info(exc))
    out["final"] = material_fp(manager.session)
    touch(args.done)
    return out


def role_transaction(args: argparse.Namespace) -> dict[str, Any]:
    st = store()
    in_memory = st.read()
    if in_memory is None:
        raise SystemExit("no session to load")
    out: dict[str, Any] = {"loaded": material_fp(in_memory)}
    touch(args.ready)
    if args.wait:
        wait_for_file(args.wait)
    endpoint = TokenEndpoint(args.token_url, args.client_id)
    try:
        result = run_refresh_transaction(
            st, in_memory, endpoint, st.root / "refresh.lock", max_hold=args.max_hold
        )
    except KittyAuthError as exc:
        out.update(error_info(exc))
    else:
        out.update(describe(result))
        if result.session is not None:
            out["api_status"] = protected_call(args.api_url, result.session.access_token)
    touch(args.done)
    return out


def role_naive(args: argparse.Namespace) -> dict[str, Any]:
    """The pre-kitty client: no lock, refresh with the in-memory token, delete on invalid_grant."""
    path = store().path
    in_memory = json.loads(path.read_text())
    touch(args.ready)
    if args.wait:
        wait_for_file(args.wait)
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        response = client.post(
            args.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": in_memory["refresh_token"],
                "client_id": args.client_id,
            },
        )
    body = response.json()
    out: dict[str, Any] = {"status": response.status_code, "deleted": False}
    if response.status_code == 200:
        in_memory.update(access_token=body["access_token"], refresh_token=body["refresh_token"])
        path.write_text(json.dumps(in_memory))
    elif response.status_code == 400 and body.get("error") == "invalid_grant":
        path.unlink()  # the incident: a stale process deletes the newer session
        out["deleted"] = True
    touch(args.done)
    return out


def role_soak_cli(args: argparse.Namespace) -> dict[str, Any]:
    """One protected call; after a 401 (the token expired in flight: the test checks that it
    was), one more `get_access_token` + call, as a real CLI would. `final_api_status` is the
    last call's status: it must be 200 for every CLI process."""
    manager = make_manager(args, store())
    out: dict[str, Any] = {}
    try:
        asked = time.time()
        token = manager.get_access_token()
        got = time.monotonic()
        out["ttl_at_get_s"] = _ttl(manager)
        out["ttl_at_ask_s"] = _ttl(manager, asked)
        out["api_status"] = protected_call(args.api_url, token)
        out["call_s"] = time.monotonic() - got  # diagnosis: how long the token was in flight
        out["final_api_status"] = out["api_status"]
        if out["api_status"] == 401:
            out["final_api_status"] = protected_call(args.api_url, manager.get_access_token())
    except KittyAuthError as exc:
        out.update(error_info(exc))
    return out


def _ttl(manager: SyncTokenManager | TokenManager, at: float | None = None) -> float | None:
    """Seconds the manager's token has left now, or had left at wall time `at` (when the caller
    asked for it: a process descheduled after kitty handed the token over is not kitty's doing,
    but a token already expired when it was asked for is)."""
    session = manager.session
    if session is None:
        return None
    now = datetime.datetime.now(datetime.UTC) if at is None else _wall(at)
    return (session.access_expires_at - now).total_seconds()


def _wall(at: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(at, datetime.UTC)


def _lowest(current: float | None, value: float | None) -> float | None:
    if value is None:
        return current
    return value if current is None or value < current else current


def role_soak_daemon(args: argparse.Namespace) -> dict[str, Any]:
    """Long-lived: one manager for the whole run, a protected call per loop, until --stop."""
    assert args.stop is not None
    manager = make_manager(args, store())
    statuses: dict[str, int] = {}
    rejections: list[dict[str, float | None]] = []
    errors: list[str] = []
    min_ttl: float | None = None
    min_ttl_at_ask: float | None = None
    calls = 0
    paused = False
    deadline = time.monotonic() + args.max_run
    touch(args.ready)
    while not args.stop.exists() and time.monotonic() < deadline:
        calls += 1
        try:
            asked = time.time()
            token = manager.get_access_token()
            got = time.monotonic()
            ttl = _ttl(manager)
            min_ttl = _lowest(min_ttl, ttl)
            min_ttl_at_ask = _lowest(min_ttl_at_ask, _ttl(manager, asked))
            status = protected_call(args.api_url, token)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status != 200:
                rejections.append({"ttl_at_get_s": ttl, "call_s": time.monotonic() - got})
        except KittyAuthError as exc:
            errors.append(type(exc).__name__)
        if args.pause_request is not None and not paused and args.pause_request.exists():
            # A safe point: no transaction in progress, so the refresh lock is not held. Freeze
            # here like a suspended laptop or a debugger would; the test sends SIGCONT.
            paused = True
            os.kill(os.getpid(), signal.SIGSTOP)
        # Pacing of a polling daemon: how often it calls the API, not an ordering device.
        time.sleep(args.interval)
    final: dict[str, Any] = {}
    try:
        final["final_api_status"] = protected_call(args.api_url, manager.get_access_token())
    except KittyAuthError as exc:
        final.update(error_info(exc))
    return {
        "calls": calls,
        "statuses": statuses,
        "rejections": rejections,
        "min_ttl_at_get_s": min_ttl,
        "min_ttl_at_ask_s": min_ttl_at_ask,
        "errors": errors,
        "paused": paused,
        **final,
    }


def role_soak_async(args: argparse.Namespace) -> dict[str, Any]:
    """An asyncio service: --tasks tasks share one TokenManager (its single-flight lock keeps
    them to one transaction at a time) and each loops get-token + protected call until --stop."""
    assert args.stop is not None
    return asyncio.run(_soak_async(args))


async def _soak_async(args: argparse.Namespace) -> dict[str, Any]:
    endpoint = TokenEndpoint(args.token_url, args.client_id)
    manager = TokenManager(store(), endpoint, **manager_kwargs(args))
    statuses: dict[str, int] = {}
    rejections: list[dict[str, float | None]] = []
    errors: list[str] = []
    lowest: dict[str, float | None] = {"get": None, "ask": None}
    deadline = time.monotonic() + args.max_run
    touch(args.ready)
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as api:

        async def call(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return (await api.get(args.api_url, headers=headers)).status_code

        async def task() -> None:
            while not args.stop.exists() and time.monotonic() < deadline:
                try:
                    asked = time.time()
                    token = await manager.get_access_token()
                    got = time.monotonic()
                    ttl = _ttl(manager)
                    lowest["get"] = _lowest(lowest["get"], ttl)
                    lowest["ask"] = _lowest(lowest["ask"], _ttl(manager, asked))
                    status = await call(token)
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                    if status != 200:
                        rejections.append({"ttl_at_get_s": ttl, "call_s": time.monotonic() - got})
                except KittyAuthError as exc:
                    errors.append(type(exc).__name__)
                await asyncio.sleep(args.interval)  # pacing of a polling service

        await asyncio.gather(*(task() for _ in range(args.tasks)))
        final: dict[str, Any] = {}
        try:
            final["final_api_status"] = await call(await manager.get_access_token())
        except KittyAuthError as exc:
            final.update(error_info(exc))
    return {
        "calls": sum(statuses.values()) + len(errors),
        "statuses": statuses,
        "rejections": rejections,
        "min_ttl_at_get_s": lowest["get"],
        "min_ttl_at_ask_s": lowest["ask"],
        "errors": errors,
        "paused": False,
        **final,
    }


ROLES: Final[dict[str, Callable[[argparse.Namespace], dict[str, Any]]]] = {
    "manager": role_manager,
    "transaction": role_transaction,
    "naive": role_naive,
    "soak_cli": role_soak_cli,
    "soak_daemon": role_soak_daemon,
    "soak_async": role_soak_async,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="_child.py auth", description="kitty auth worker")
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--api-url", required=True)
    parser.add_argument("--client-id", default=CLIENT_ID, help="a public client (auth none)")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--ready", type=Path, help="touch after loading the session")
    parser.add_argument("--wait", type=Path, help="wait for this file before acting")
    parser.add_argument("--done", type=Path, help="touch when finished")
    parser.add_argument("--stop", type=Path, help="soak_daemon: stop when this file exists")
    parser.add_argument(
        "--pause-request", type=Path, help="soak_daemon: SIGSTOP itself once this file exists"
    )
    parser.add_argument("--action", default="refresh_force")
    parser.add_argument("--no-preload", dest="preload", action="store_false")
    parser.add_argument("--max-hold", type=float, default=10.0)
    parser.add_argument("--margin", type=float)
    parser.add_argument("--jitter", type=float)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--max-run", type=float, default=120.0)
    parser.add_argument("--tasks", type=int, default=3, help="soak_async: concurrent tasks")
    args = parser.parse_args(argv)
    # Everything at DEBUG goes to the captured log: the leak check greps all of it.
    logging.basicConfig(
        level=logging.DEBUG,
        stream=sys.stderr,
        format=f"%(asctime)s {os.getpid()} %(name)s %(levelname)s %(message)s",
    )
    warm_api_client()
    out = {"role": args.role, "pid": os.getpid(), **ROLES[args.role](args)}
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(args.result)  # the test never sees a half-written result
    with contextlib.suppress(Exception):
        logging.shutdown()
    return 0
