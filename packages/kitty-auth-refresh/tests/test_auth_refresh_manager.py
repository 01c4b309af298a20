"""``TokenManager``/``SyncTokenManager``: margin, mapping, backoff, single-flight (AUTH-28..36)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import pathlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from _authkit import FakeClock, Script, make_session, ok, refresh_lines, status, then
from kitty_auth_refresh import (
    NotAuthenticated,
    RefreshLockBusy,
    RefreshOutcome,
    RefreshResult,
    ReloginRequired,
    Session,
    SessionStore,
    StoreWriteFailed,
    SyncTokenManager,
    TokenEndpoint,
    TokenManager,
    TransientRefreshError,
    run_refresh_transaction,
    same_material,
)
from kitty_auth_refresh import _manager as manager_module
from kitty_filelock import MachineFileLock

EndpointFor = Callable[..., TokenEndpoint]
NOW_LIFETIME = 600.0


class CountingStore(SessionStore):
    __slots__ = ("reads",)

    def __init__(self, root: pathlib.Path) -> None:
        super().__init__(root)
        self.reads = 0

    def read(self) -> Session | None:
        self.reads += 1
        return super().read()


def sync_manager(
    store: SessionStore, endpoint: TokenEndpoint, clock: FakeClock, **kwargs: object
) -> SyncTokenManager:
    kwargs.setdefault("jitter", 0.0)
    kwargs.setdefault("acquire_timeout", 2.0)
    return SyncTokenManager(store, endpoint, clock=clock.clock(), **kwargs)  # type: ignore[arg-type]  # test-only kwargs pass-through


def expiring(clock: FakeClock, ttl_s: float = 10.0, **changes: object) -> Session:
    """A session inside the default 60 s margin (lifetime 600 s)."""
    return make_session(ttl_s=ttl_s, lifetime_s=NOW_LIFETIME, now=clock.wall, **changes)  # type: ignore[arg-type]  # test-only kwargs pass-through


# ---- margin and jitter (AUTH-29) --------------------------------------------------------------


def test_margin_is_capped_by_half_lifetime_plus_bounded_jitter(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock, jitter=30.0)
    core = manager._core
    long_lived = make_session(lifetime_s=3600)
    m = core.margin(long_lived)
    assert 60.0 <= m <= 90.0
    assert core.margin(long_lived) == m  # drawn once per material identity
    short = make_session(lifetime_s=2.0)
    assert 1.0 <= core.margin(short) <= 1.5  # min(60, 2/2) + U(0, min(30, 2/4))
    assert core.margin(make_session(lifetime_s=0.0, ttl_s=0.0)) == 0.0


def test_jitter_is_shared_by_managers_and_redrawn_for_new_material(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    a = sync_manager(store, endpoint_for(Script([])), fake_clock, jitter=30.0)._core
    b = sync_manager(store, endpoint_for(Script([])), fake_clock, jitter=30.0)._core
    margins = set()
    for _ in range(20):
        session = make_session(lifetime_s=3600)
        assert a.margin(session) == b.margin(session)
        margins.add(a.margin(session))
    assert len(margins) > 1  # different materials draw different jitter


def test_refresh_needed_exactly_within_margin(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    core = sync_manager(store, endpoint_for(Script([])), fake_clock)._core
    assert core.needs_refresh(expiring(fake_clock, ttl_s=60.0))
    assert not core.needs_refresh(expiring(fake_clock, ttl_s=60.5))


# ---- fast path and loading (AUTH-34, AUTH-36) -------------------------------------------------


def test_fresh_token_takes_no_lock_reads_no_file_and_no_network(
    home: pathlib.Path, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    store = CountingStore(home / "auth")
    session = make_session(now=fake_clock.wall)
    store.write(session)
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock)
    for _ in range(50):
        assert manager.get_access_token() == session.access_token
    assert store.reads == 1
    assert not (store.root / "refresh.lock").exists()


def test_no_session_is_not_authenticated_with_login_step(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock, login_command="acme login")
    with pytest.raises(NotAuthenticated) as info:
        manager.get_access_token()
    assert "Run `acme login` to sign in again." in str(info.value)
    assert str(store.path) in str(info.value)


def test_corrupt_store_on_load_is_relogin_required(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    store.root.mkdir(parents=True)
    store.path.write_text("{oops")
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock)
    with pytest.raises(ReloginRequired) as info:
        manager.get_access_token()
    assert info.value.cause == "storage_corrupt"
    assert f"the saved session file {store.path} is unreadable" in str(info.value)
    assert store.path.read_text() == "{oops"


# ---- outcome mapping (AUTH-32) ----------------------------------------------------------------


def test_refreshed_is_adopted(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    session = expiring(fake_clock)
    store.write(session)
    manager = sync_manager(store, endpoint_for(Script([ok(access="new-acc")])), fake_clock)
    assert manager.get_access_token() == "new-acc"
    assert manager.session == store.read()


def test_adopted_newer_uses_persisted_material_without_network(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    old = expiring(fake_clock)
    store.write(old)
    script = Script([])
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    manager.get_access_token  # noqa: B018 - nothing loaded yet
    manager._core.session = old
    newer = make_session(now=fake_clock.wall)
    store.write(newer)
    assert manager.get_access_token() == newer.access_token
    assert script.requests == []


def test_stale_rejection_adopts_peer_and_follow_up_refreshes_once(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    ours = expiring(fake_clock)
    store.write(ours)
    peer = expiring(fake_clock, ttl_s=5.0)  # also due: one follow-up transaction, no more
    script = Script(
        [then(lambda: store.write(peer), status(400, {"error": "invalid_grant"})), ok("fresh")]
    )
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    assert manager.get_access_token() == "fresh"
    assert script.presented() == [ours.refresh_token, peer.refresh_token]
    assert store.read() == manager.session


def test_current_rejection_clears_memory_and_raises_relogin(
    store: SessionStore,
    endpoint_for: EndpointFor,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KITTY_LOGIN_COMMAND", "acme auth login")
    store.write(expiring(fake_clock))
    manager = sync_manager(
        store, endpoint_for(Script([status(400, {"error": "invalid_grant"})])), fake_clock
    )
    with pytest.raises(ReloginRequired) as info:
        manager.get_access_token()
    assert str(info.value) == (
        "Your session has ended: the server rejected the refresh token (expired or revoked). "
        "Run `acme auth login` to sign in again."
    )
    assert manager.session is None
    assert store.read() is None


def test_transient_error_keeps_serving_valid_token_and_backs_off(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    session = expiring(fake_clock, ttl_s=30.0)
    store.write(session)
    failures = [status(503)] * 3
    script = Script([*failures, ok("recovered")])
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    before = store.path.read_bytes()

    assert manager.get_access_token() == session.access_token
    assert len(script.requests) == 1
    # Within the 2 s backoff: no new attempt, token still served.
    fake_clock.advance(1.9)
    assert manager.get_access_token() == session.access_token
    assert len(script.requests) == 1
    fake_clock.advance(0.2)
    assert manager.get_access_token() == session.access_token
    assert len(script.requests) == 2
    # The backoff doubled to 4 s.
    fake_clock.advance(3.9)
    manager.get_access_token()
    assert len(script.requests) == 2
    fake_clock.advance(0.2)
    manager.get_access_token()
    assert len(script.requests) == 3
    assert store.path.read_bytes() == before
    fake_clock.advance(8.1)
    assert manager.get_access_token() == "recovered"
    assert manager._core._retry_at is None  # success resets the backoff


def test_backoff_is_capped(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    core = sync_manager(store, endpoint_for(Script([])), fake_clock)._core
    for _ in range(10):
        core._back_off()
    assert core._backoff_s == 60.0


def test_transient_error_with_expired_token_raises_retryable_and_keeps_session(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    session = expiring(fake_clock, ttl_s=-1.0)
    store.write(session)
    manager = sync_manager(store, endpoint_for(Script([status(502)])), fake_clock)
    with pytest.raises(TransientRefreshError) as info:
        manager.get_access_token()
    assert not isinstance(info.value, RefreshLockBusy)
    assert info.value.kind == "server_error"
    assert manager.session == session
    assert store.read() == session


def test_transient_error_with_expired_token_backs_off_the_network_too(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    # Found against oidc-provider (issue 14): during an outage, once the access token had
    # expired, every get_access_token() sent another refresh (76 requests in 2 s from one
    # process polling at 50 Hz). The backoff holds whatever the token's state: in it, the last
    # failure is raised again without a request, and newer persisted material is still adopted.
    session = expiring(fake_clock, ttl_s=-1.0)
    store.write(session)
    script = Script([status(503), status(503), ok("recovered")])
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    for _ in range(3):
        with pytest.raises(TransientRefreshError) as info:
            manager.get_access_token()
        assert info.value.kind == "server_error"
        fake_clock.advance(0.5)
    assert len(script.requests) == 1  # 1.5 s of calls inside the 2 s backoff: one request
    fake_clock.advance(0.6)
    with pytest.raises(TransientRefreshError):
        manager.get_access_token()  # the backoff ended: one more attempt, then 4 s
    assert len(script.requests) == 2
    newer = expiring(fake_clock, ttl_s=120.0)
    store.write(newer)  # a peer refreshed meanwhile: adopted at once, no request
    assert manager.get_access_token() == newer.access_token
    assert len(script.requests) == 2


@pytest.mark.usefixtures("held_lock")
def test_lock_busy_with_expired_token_backs_off(
    store: SessionStore,
    endpoint_for: EndpointFor,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store.write(expiring(fake_clock, ttl_s=-1.0))
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock, acquire_timeout=0.05)
    transactions: list[RefreshResult] = []
    real = run_refresh_transaction  # the function the manager module calls by this name

    def counted(*args: Any, **kwargs: Any) -> RefreshResult:
        transactions.append(result := real(*args, **kwargs))
        return result

    monkeypatch.setattr(manager_module, "run_refresh_transaction", counted)
    for _ in range(2):
        with pytest.raises(RefreshLockBusy) as info:
            manager.get_access_token()
        assert info.value.kind == "lock_busy"
    assert len(transactions) == 1  # in the backoff: no second wait for the lock


def test_transient_error_adopts_newer_persisted_material(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    old = expiring(fake_clock, ttl_s=-5.0)
    newer = expiring(fake_clock, ttl_s=3.0)  # newer but due, so it is refreshed ... and fails
    store.write(newer)
    manager = sync_manager(store, endpoint_for(Script([status(503)])), fake_clock)
    manager._core.session = old
    assert manager.get_access_token() == newer.access_token
    assert manager.session == newer


@pytest.fixture
def held_lock(lock_path: pathlib.Path) -> Iterator[None]:
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with MachineFileLock(lock_path, acquire_timeout=5):
            taken.set()
            done.wait(30)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        done.set()
        thread.join(10)


@pytest.mark.usefixtures("held_lock")
def test_lock_busy_with_expired_token_raises_lock_busy(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    session = expiring(fake_clock, ttl_s=-1.0)
    store.write(session)
    script = Script([])
    manager = sync_manager(store, endpoint_for(script), fake_clock, acquire_timeout=0.05)
    with pytest.raises(RefreshLockBusy) as info:
        manager.get_access_token()
    assert info.value.kind == "lock_busy"
    assert isinstance(info.value, TransientRefreshError)
    assert script.requests == []
    assert manager.session == session


@pytest.mark.usefixtures("held_lock")
def test_lock_busy_adopts_valid_persisted_token(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    old = expiring(fake_clock, ttl_s=-1.0)
    store.write(make_session(now=fake_clock.wall))
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock, acquire_timeout=0.05)
    manager._core.session = old
    result = manager.refresh_if_needed()
    assert result is not None
    assert result.outcome is RefreshOutcome.LOCK_TIMEOUT_ADOPTED
    assert manager.session == store.read()


@pytest.mark.usefixtures("held_lock")
def test_save_login_and_logout_wait_for_the_refresh_lock(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock, acquire_timeout=0.05)
    with pytest.raises(RefreshLockBusy):
        manager.save_login(make_session())
    assert store.read() is None
    store.write(make_session())
    with pytest.raises(RefreshLockBusy):
        manager.logout()
    assert store.read() is not None


def test_corrupt_store_during_refresh_is_relogin_required(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    session = expiring(fake_clock)
    store.write(session)
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock)
    manager._core.session = session
    store.path.write_text("[]")
    with pytest.raises(ReloginRequired) as info:
        manager.get_access_token()
    assert info.value.cause == "storage_corrupt"
    assert store.path.read_text() == "[]"
    assert manager.session is None


def test_store_write_failure_keeps_rotated_session_in_memory(
    store: SessionStore,
    endpoint_for: EndpointFor,
    fake_clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = expiring(fake_clock)
    store.write(session)

    def fail_replace(*args: object) -> None:
        raise OSError(28, "No space left on device")

    script = Script(
        [then(lambda: monkeypatch.setattr("os.replace", fail_replace), ok("rotated")), ok("r2")]
    )
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    assert manager.get_access_token() == "rotated"
    monkeypatch.undo()
    assert store.read() == session  # old file intact
    assert manager.session is not None
    assert manager.session.access_token == "rotated"
    # refresh_if_needed reports the failure explicitly.
    monkeypatch.setattr("os.replace", fail_replace)
    with pytest.raises(StoreWriteFailed):
        manager.refresh_if_needed(force=True)


# ---- force, save_login, logout ----------------------------------------------------------------


def test_force_goes_through_the_transaction(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    fresh = make_session(now=fake_clock.wall)
    store.write(fresh)
    script = Script([ok("forced")])
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    assert manager.get_access_token() == fresh.access_token
    result = manager.refresh_if_needed(force=True)
    assert result is not None
    assert result.outcome is RefreshOutcome.REFRESHED
    assert manager.get_access_token() == "forced"
    # With newer fresh material on disk, force adopts it instead of spending a refresh.
    newer = make_session(now=fake_clock.wall)
    store.write(newer)
    result = manager.refresh_if_needed(force=True)
    assert result is not None
    assert result.outcome is RefreshOutcome.ADOPTED_NEWER
    assert len(script.requests) == 1
    assert manager.refresh_if_needed() is None  # fresh: nothing to do


def test_save_login_then_logout(
    store: SessionStore,
    endpoint_for: EndpointFor,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock)
    session = make_session(now=fake_clock.wall)
    manager.save_login(session)
    assert store.read() == session
    assert manager.get_access_token() == session.access_token
    manager.logout()
    assert store.read() is None
    assert manager.session is None
    assert f"logout session={session.session_hash}" in [r.getMessage() for r in caplog.records]
    with pytest.raises(NotAuthenticated):
        manager.get_access_token()
    manager.logout()  # idempotent; nothing in memory or on disk
    assert "logout session=-" in [r.getMessage() for r in caplog.records]
    with pytest.raises(TypeError):
        manager.save_login("token")  # type: ignore[arg-type]  # proving the runtime check


def test_logout_removes_a_corrupt_file(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    store.root.mkdir(parents=True)
    store.path.write_text("garbage")
    sync_manager(store, endpoint_for(Script([])), fake_clock).logout()
    assert not store.path.exists()


def test_another_process_logging_out_ends_the_session(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    store.write(expiring(fake_clock))
    manager = sync_manager(store, endpoint_for(Script([])), fake_clock, login_command="acme login")
    manager.get_access_token  # noqa: B018
    manager._core.load()
    store.delete()
    with pytest.raises(ReloginRequired) as info:
        manager.get_access_token()
    assert info.value.cause == "session_removed"
    assert "removed by another process (logout)" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"refresh_margin": -1}, ValueError),
        ({"jitter": float("nan")}, ValueError),
        ({"max_hold": 0}, ValueError),
        ({"acquire_timeout": True}, ValueError),
    ],
)
def test_constructor_validates(
    kwargs: dict[str, object],
    error: type[Exception],
    store: SessionStore,
    endpoint_for: EndpointFor,
    fake_clock: FakeClock,
) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        sync_manager(store, endpoint_for(Script([])), fake_clock, **kwargs)


def test_constructor_type_checks(store: SessionStore, endpoint_for: EndpointFor) -> None:
    with pytest.raises(TypeError, match="SessionStore"):
        SyncTokenManager("path", endpoint_for(Script([])))  # type: ignore[arg-type]  # runtime check
    with pytest.raises(TypeError, match="TokenEndpoint"):
        TokenManager(store, "http://x")  # type: ignore[arg-type]  # runtime check


def test_lock_path_defaults_next_to_the_store(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock, tmp_path: pathlib.Path
) -> None:
    store.write(expiring(fake_clock))
    sync_manager(store, endpoint_for(Script([ok()])), fake_clock).get_access_token()
    assert (store.root / "refresh.lock").exists()
    custom = tmp_path / "elsewhere" / "r.lock"
    store.write(expiring(fake_clock))
    sync_manager(
        store, endpoint_for(Script([ok()])), fake_clock, lock_path=custom
    ).get_access_token()
    assert custom.exists()


# ---- ReloginRequired text (AUTH-33) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "text"),
    [
        ("invalid_grant", "the server rejected the refresh token (expired or revoked)"),
        ("session_invalid", "the server ended the session"),
        ("session_removed", "the saved session was removed by another process (logout)"),
        ("storage_corrupt", "the saved session file /h/auth/session.json is unreadable"),
    ],
)
def test_relogin_message_names_cause_and_command(
    cause: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KITTY_LOGIN_COMMAND", "env login")
    error = ReloginRequired(cause, "acme login", "/h/auth/session.json")
    assert str(error) == f"Your session has ended: {text}. Run `acme login` to sign in again."
    assert "\n" not in str(error)
    assert str(ReloginRequired(cause, None, "/h/auth/session.json")).endswith(
        "Run `env login` to sign in again."
    )
    monkeypatch.setenv("KITTY_LOGIN_COMMAND", "")
    assert str(ReloginRequired(cause, None, "/h/auth/session.json")).endswith(
        ": log in again with your application."
    )


# ---- single-flight and the event loop (AUTH-30, AUTH-31) --------------------------------------


async def test_two_managers_twenty_coroutines_one_network_refresh(
    store: SessionStore, endpoint_for: EndpointFor, auth_log: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    clock.wall = dt.datetime.now(dt.UTC)
    store.write(expiring(clock))
    script = Script([ok("rotated")])
    endpoint = endpoint_for(script)
    managers = [TokenManager(store, endpoint, jitter=0.0, clock=clock.clock()) for _ in range(2)]
    for manager in managers:
        manager._core.load()  # both hold the same expiring material, as two long-lived services
    tokens = await asyncio.wait_for(
        asyncio.gather(*(m.get_access_token() for m in managers for _ in range(20))), 60
    )
    assert set(tokens) == {"rotated"}
    assert len(script.requests) == 1
    lines = refresh_lines(auth_log)
    outcomes = sorted(line.split()[1] for line in lines)
    # One transaction per manager at most: one refresh, the other manager adopts it.
    assert outcomes == ["outcome=adopted_newer", "outcome=refreshed"]


def test_sync_manager_single_flight_across_threads(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    store.write(expiring(fake_clock))
    gate = threading.Event()

    def slow_ok(request: httpx.Request) -> httpx.Response:
        gate.wait(0.2)  # keep the first refresh in flight while the others pile up
        return ok("rotated")(request)

    script = Script([slow_ok])
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(manager.get_access_token()))
        for _ in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["rotated"] * 20
    assert len(script.requests) == 1


async def test_event_loop_keeps_ticking_during_a_slow_refresh(
    store: SessionStore, endpoint_for: EndpointFor
) -> None:
    clock = FakeClock()
    clock.wall = dt.datetime.now(dt.UTC)
    store.write(expiring(clock))

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(1.0)  # a blocking 1 s refresh: must run off the event loop
        return ok("slow")(request)

    manager = TokenManager(store, endpoint_for(Script([slow])), jitter=0.0, clock=clock.clock())
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    try:
        assert await asyncio.wait_for(manager.get_access_token(), 30) == "slow"
    finally:
        stop.set()
        await task
    assert len(gaps) >= 20
    # A blocked loop would show one ~1 s gap; the bound is generous for a loaded 2-core box.
    assert max(gaps) < 0.5


def test_async_manager_survives_a_new_event_loop(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    store.write(expiring(fake_clock))
    script = Script([ok("one"), ok("two")])
    manager = TokenManager(store, endpoint_for(script), jitter=0.0, clock=fake_clock.clock())
    assert asyncio.run(manager.get_access_token()) == "one"
    result = asyncio.run(manager.refresh_if_needed(force=True))
    assert result is not None
    assert result.outcome is RefreshOutcome.REFRESHED
    asyncio.run(manager.logout())
    assert manager.session is None
    session = make_session(now=fake_clock.wall)
    asyncio.run(manager.save_login(session))
    assert store.read() == session
    assert same_material(manager.session or session, session)


def test_jitter_rng_is_injectable(
    store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    session = make_session(lifetime_s=3600)
    manager = SyncTokenManager(
        store, endpoint_for(Script([])), jitter=30.0, rng=random.Random(7), clock=fake_clock.clock()
    )
    expected = 60.0 + 30.0 * random.Random(7).random()
    assert manager._core.margin(session) == pytest.approx(expected)
    assert dataclasses.is_dataclass(session)


@pytest.mark.parametrize("persisted_kind", ["newer_fresh", "newer_due", "same", "corrupt", "none"])
def test_backoff_still_adopts_newer_persisted_material(
    persisted_kind: str, store: SessionStore, endpoint_for: EndpointFor, fake_clock: FakeClock
) -> None:
    """Backing off limits network attempts; it must not hide a peer's newer tokens on disk."""
    session = expiring(fake_clock, ttl_s=30.0)
    store.write(session)
    script = Script([status(503), ok("after-backoff")])
    manager = sync_manager(store, endpoint_for(script), fake_clock)
    assert manager.get_access_token() == session.access_token  # 503: backing off
    newer_fresh = make_session(now=fake_clock.wall)
    newer_due = expiring(fake_clock, ttl_s=40.0)
    if persisted_kind == "newer_fresh":
        store.write(newer_fresh)
    elif persisted_kind == "newer_due":
        store.write(newer_due)  # lives longer than ours but is itself due: refresh it now
    elif persisted_kind == "corrupt":
        store.path.write_text("{")
    elif persisted_kind == "none":
        store.delete()
    token = manager.get_access_token()
    expected = {
        "newer_fresh": newer_fresh.access_token,
        "newer_due": "after-backoff",
        "same": session.access_token,
        "corrupt": session.access_token,
        "none": session.access_token,
    }[persisted_kind]
    assert token == expected
    assert len(script.requests) == (2 if persisted_kind == "newer_due" else 1)
    if persisted_kind == "newer_due":
        assert script.presented()[1] == newer_due.refresh_token
