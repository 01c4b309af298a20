"""The refresh transaction, branch by branch (SPEC §2.3, AUTH-15 .. AUTH-27).

Real file lock and real store on a temp home; the token endpoint is an ``httpx.MockTransport``
script and time is a fake clock, so each row pins one branch exactly.
"""

from __future__ import annotations

import ast
import dataclasses
import logging
import pathlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import kitty_auth_refresh
from _authkit import (
    FakeClock,
    Handler,
    Script,
    make_session,
    ok,
    raises,
    refresh_lines,
    status,
    then,
)
from kitty_auth_refresh import (
    CorruptSession,
    RefreshOutcome,
    RejectionCause,
    Session,
    SessionStore,
    StoreWriteFailed,
    TokenEndpoint,
    run_refresh_transaction,
    same_material,
)
from kitty_filelock import MachineFileLock

EndpointFor = Callable[..., TokenEndpoint]
PACKAGE_DIR = pathlib.Path(kitty_auth_refresh.__file__).parent


@dataclasses.dataclass(frozen=True)
class World:
    """What a row sees: the persisted session (None = no file) and the in-memory copy."""

    store: SessionStore
    persisted: Session | None
    in_memory: Session
    clock: FakeClock


Setup = Callable[[World], list[Handler]]


def _rotated_by_peer(world: World) -> Session:
    """The session a concurrent process writes while our request is in flight."""
    return make_session(session_id="sess-1", now=world.clock.wall)


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    persisted: str  # "same" | "newer_fresh" | "newer_expiring" | "none"
    steps: Setup
    outcome: RefreshOutcome
    presented: int  # number of network requests
    file: str  # "kept" | "deleted" | "absent" | "new" | "peer"
    cause: RejectionCause | None = None
    error_kind: str | None = None
    retry_after: int | None = None
    result_session: str = "persisted"  # "persisted" | "in_memory" | "new" | "none" | "peer"
    max_hold: float = 10.0


def _peer_writes(world: World, handler: Handler) -> Handler:
    peer = _rotated_by_peer(world)
    _PEER[world.store.path] = peer
    return then(lambda: world.store.write(peer), handler)


def _peer_deletes(world: World, handler: Handler) -> Handler:
    return then(lambda: world.store.path.unlink(), handler)


_PEER: dict[pathlib.Path, Session] = {}


def _always(handler: Handler) -> Setup:
    return lambda world: [handler]


REJECT_INVALID_GRANT = status(400, {"error": "invalid_grant"})
REJECT_SESSION_INVALID = status(401, {"error": "session_invalid"})
REPLAY_0 = status(409, {"error": "refresh_replay_benign_retry"})
REPLAY_1 = status(409, {"error": "refresh_replay_benign_retry", "retry_after": 1})
REPLAY_HUGE = status(409, {"error": "refresh_replay_benign_retry", "retry_after": 5})

ROWS = [
    Row(
        "same material refreshes",
        "same",
        lambda w: [ok()],
        RefreshOutcome.REFRESHED,
        1,
        "new",
        result_session="new",
    ),
    Row(
        "newer fresh material adopted without network",
        "newer_fresh",
        lambda w: [],
        RefreshOutcome.ADOPTED_NEWER,
        0,
        "kept",
    ),
    Row(
        "newer but expiring material is refreshed with ITS token",
        "newer_expiring",
        lambda w: [ok()],
        RefreshOutcome.REFRESHED,
        1,
        "new",
        result_session="new",
    ),
    Row(
        "no file: session removed, no network",
        "none",
        lambda w: [],
        RefreshOutcome.CURRENT_REJECTION_CLEARED,
        0,
        "absent",
        cause=RejectionCause.SESSION_REMOVED,
        result_session="none",
    ),
    Row(
        "invalid_grant for current material clears",
        "same",
        lambda w: [REJECT_INVALID_GRANT],
        RefreshOutcome.CURRENT_REJECTION_CLEARED,
        1,
        "deleted",
        cause=RejectionCause.INVALID_GRANT,
        result_session="none",
    ),
    Row(
        "session_invalid for current material clears",
        "same",
        lambda w: [REJECT_SESSION_INVALID],
        RefreshOutcome.CURRENT_REJECTION_CLEARED,
        1,
        "deleted",
        cause=RejectionCause.SESSION_INVALID,
        result_session="none",
    ),
    Row(
        "403 invalid_grant is a rejection too",
        "same",
        lambda w: [status(403, {"error": "invalid_grant"})],
        RefreshOutcome.CURRENT_REJECTION_CLEARED,
        1,
        "deleted",
        cause=RejectionCause.INVALID_GRANT,
        result_session="none",
    ),
    Row(
        "rejection after a peer rotated: stale, file kept",
        "same",
        lambda w: [_peer_writes(w, REJECT_INVALID_GRANT)],
        RefreshOutcome.STALE_REJECTION_PRESERVED,
        1,
        "peer",
        result_session="peer",
    ),
    Row(
        "rejection after a peer logged out: nothing to delete",
        "same",
        lambda w: [_peer_deletes(w, REJECT_INVALID_GRANT)],
        RefreshOutcome.CURRENT_REJECTION_CLEARED,
        1,
        "absent",
        cause=RejectionCause.INVALID_GRANT,
        result_session="none",
    ),
    Row(
        "replay with no newer material: spent token never re-sent",
        "same",
        lambda w: [REPLAY_0],
        RefreshOutcome.LOCK_TIMEOUT_ERROR,
        1,
        "kept",
        error_kind="replay",
        retry_after=0,
        result_session="in_memory",
    ),
    Row(
        "replay with newer material: one retry with it",
        "same",
        lambda w: [_peer_writes(w, REPLAY_1), ok()],
        RefreshOutcome.REFRESHED,
        2,
        "new",
        result_session="new",
    ),
    Row(
        "replay retry fails: give up, nothing deleted",
        "same",
        lambda w: [_peer_writes(w, REPLAY_0), REJECT_INVALID_GRANT],
        RefreshOutcome.LOCK_TIMEOUT_ERROR,
        2,
        "peer",
        error_kind="replay",
        retry_after=0,
        result_session="in_memory",
    ),
    Row(
        "replay whose retry_after exceeds the hold budget: give up",
        "same",
        lambda w: [_peer_writes(w, REPLAY_HUGE)],
        RefreshOutcome.LOCK_TIMEOUT_ERROR,
        1,
        "peer",
        error_kind="replay",
        retry_after=5,
        result_session="in_memory",
        max_hold=4.0,
    ),
    Row(
        "replay after a peer logged out",
        "same",
        lambda w: [_peer_deletes(w, REPLAY_0)],
        RefreshOutcome.CURRENT_REJECTION_CLEARED,
        1,
        "absent",
        cause=RejectionCause.SESSION_REMOVED,
        result_session="none",
    ),
    *[
        Row(
            f"transient: {label}",
            "same",
            _always(handler),
            RefreshOutcome.TRANSIENT_ERROR_PRESERVED,
            1,
            "kept",
            error_kind=kind,
        )
        for label, handler, kind in [
            ("500", status(500, {"error": "boom"}), "server_error"),
            ("503 no body", status(503, b"down"), "server_error"),
            ("408", status(408), "timeout"),
            ("429", status(429, {"error": "slow_down"}), "rate_limited"),
            ("connect error", raises(httpx.ConnectError("refused")), "transport"),
            ("read error", raises(httpx.ReadError("reset")), "transport"),
            ("read timeout", raises(httpx.ReadTimeout("slow")), "timeout"),
            ("connect timeout", raises(httpx.ConnectTimeout("slow")), "timeout"),
            ("teapot", status(418, {"error": "teapot"}), "protocol"),
            ("400 other error", status(400, {"error": "invalid_request"}), "protocol"),
            ("401 without body", status(401, b""), "protocol"),
            ("409 other", status(409, {"error": "conflict"}), "protocol"),
            ("200 not JSON", status(200, b"<html>"), "protocol"),
            ("200 without access_token", status(200, {"expires_in": 5}), "protocol"),
        ]
    ],
]


def _build_world(row: Row, store: SessionStore, clock: FakeClock) -> World:
    in_memory = make_session(ttl_s=-10, lifetime_s=600, now=clock.wall)
    persisted: Session | None
    if row.persisted == "same":
        persisted = in_memory
    elif row.persisted == "newer_fresh":
        persisted = make_session(ttl_s=3000, now=clock.wall)
    elif row.persisted == "newer_expiring":
        persisted = make_session(ttl_s=2, lifetime_s=600, now=clock.wall)
    else:
        persisted = None
    if persisted is not None:
        store.write(persisted)
    return World(store, persisted, in_memory, clock)


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_transaction_branch(
    row: Row,
    store: SessionStore,
    lock_path: pathlib.Path,
    fake_clock: FakeClock,
    endpoint_for: EndpointFor,
    auth_log: pytest.LogCaptureFixture,
) -> None:
    world = _build_world(row, store, fake_clock)
    before = store.path.read_bytes() if store.path.exists() else None
    script = Script(row.steps(world))
    result = run_refresh_transaction(
        store,
        world.in_memory,
        endpoint_for(script),
        lock_path,
        max_hold=row.max_hold,
        clock=fake_clock.clock(),
    )

    assert result.outcome is row.outcome
    assert result.network_call is (row.presented > 0)
    assert len(script.requests) == row.presented
    assert result.cause is row.cause
    assert result.error_kind == row.error_kind
    assert result.retry_after == row.retry_after

    # The request always carries the token re-read under the lock, never the in-memory one.
    if row.presented:
        assert world.persisted is not None
        assert script.presented()[0] == world.persisted.refresh_token
        if row.persisted != "same":
            assert world.in_memory.refresh_token not in script.presented()
    if row.presented == 2:
        peer = _PEER[store.path]
        assert script.presented()[1] == peer.refresh_token  # never the spent one again

    on_disk = store.read() if store.path.exists() else None
    if row.file == "kept":
        assert store.path.read_bytes() == before
    elif row.file in ("deleted", "absent"):
        assert on_disk is None
    elif row.file == "peer":
        assert on_disk == _PEER[store.path]
    else:
        assert on_disk is not None
        assert world.persisted is not None
        assert not same_material(on_disk, world.persisted)
        assert on_disk == result.session

    expected_session = {
        "persisted": world.persisted,
        "in_memory": world.in_memory,
        "none": None,
        "peer": _PEER.get(store.path),
        "new": on_disk,
    }[row.result_session]
    assert result.session == expected_session

    # AUTH-26: exactly one INFO line, in the documented shape.
    lines = refresh_lines(auth_log)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"refresh outcome={row.outcome.value} ")
    assert f"network_call={'true' if row.presented else 'false'}" in lines[0]
    # The lock is free again (AUTH-24/25): a single-try acquire succeeds.
    with MachineFileLock(lock_path, acquire_timeout=0):
        pass


LINE_RE = re.compile(
    r"^refresh outcome=(?P<outcome>[a-z_]+) network_call=(?P<net>true|false) "
    r"waited_ms=(?P<waited>\d+) held_ms=(?P<held>\d+) session=(?P<hash>[0-9a-f]{8}|-)"
    r"(?: cause=(?P<cause>[a-z_]+))?(?: error=(?P<error>[A-Za-z_]+))?"
    r"(?: retry_after=(?P<retry>\d+))?$"
)


def test_log_line_format_and_fields(
    store: SessionStore,
    lock_path: pathlib.Path,
    fake_clock: FakeClock,
    endpoint_for: EndpointFor,
    auth_log: pytest.LogCaptureFixture,
) -> None:
    session = make_session(ttl_s=-1)
    store.write(session)
    peer = make_session(now=fake_clock.wall)
    script = Script([then(lambda: store.write(peer), REPLAY_1), ok()])
    run_refresh_transaction(
        store, session, endpoint_for(script), lock_path, clock=fake_clock.clock()
    )
    store.write(session)
    run_refresh_transaction(
        store, session, endpoint_for(Script([REPLAY_0])), lock_path, clock=fake_clock.clock()
    )
    run_refresh_transaction(
        store,
        session,
        endpoint_for(Script([REJECT_INVALID_GRANT])),
        lock_path,
        clock=fake_clock.clock(),
    )
    lines = refresh_lines(auth_log)
    assert len(lines) == 3
    parsed = [LINE_RE.match(line) for line in lines]
    assert all(parsed), lines
    first, second, third = (m.groupdict() for m in parsed if m)
    assert first["outcome"] == "refreshed"
    assert first["hash"] == session.session_hash
    assert second["error"] == "replay"
    assert second["retry"] == "0"
    assert third["cause"] == "invalid_grant"
    assert third["net"] == "true"


# ---- lock timeout (T0) ------------------------------------------------------------------------


@pytest.fixture
def held_lock(lock_path: pathlib.Path) -> Iterator[None]:
    """Another holder of the refresh lock (a thread: the lock serialises threads like processes)."""
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


@pytest.mark.parametrize(
    ("ttl_s", "outcome", "kind"),
    [
        (60.0, RefreshOutcome.LOCK_TIMEOUT_ADOPTED, None),
        (4.0, RefreshOutcome.LOCK_TIMEOUT_ERROR, "lock_busy"),
        (None, RefreshOutcome.LOCK_TIMEOUT_ERROR, "lock_busy"),
    ],
)
@pytest.mark.usefixtures("held_lock")
def test_lock_timeout_never_refreshes(
    ttl_s: float | None,
    outcome: RefreshOutcome,
    kind: str | None,
    store: SessionStore,
    lock_path: pathlib.Path,
    fake_clock: FakeClock,
    endpoint_for: EndpointFor,
    auth_log: pytest.LogCaptureFixture,
) -> None:
    in_memory = make_session(ttl_s=-5)
    persisted = make_session(ttl_s=ttl_s, now=fake_clock.wall) if ttl_s is not None else None
    if persisted is not None:
        store.write(persisted)
    script = Script([])
    result = run_refresh_transaction(
        store,
        in_memory,
        endpoint_for(script),
        lock_path,
        acquire_timeout=0.05,
        clock=fake_clock.clock(),
    )
    assert result.outcome is outcome
    assert result.error_kind == kind
    assert script.requests == []
    assert result.network_call is False
    assert result.session == (
        persisted if outcome is RefreshOutcome.LOCK_TIMEOUT_ADOPTED else in_memory
    )
    assert store.read() == persisted
    assert len(refresh_lines(auth_log)) == 1


@pytest.mark.usefixtures("held_lock")
def test_lock_timeout_with_corrupt_store_propagates(
    store: SessionStore, lock_path: pathlib.Path, endpoint_for: EndpointFor
) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    store.path.write_text("{not json")
    with pytest.raises(CorruptSession):
        run_refresh_transaction(
            store, make_session(), endpoint_for(Script([])), lock_path, acquire_timeout=0.05
        )
    assert store.path.read_text() == "{not json"


# ---- non-outcome exits (AUTH-25) and budgets (AUTH-19, AUTH-24) -------------------------------


def test_corrupt_store_under_lock_propagates_untouched(
    store: SessionStore,
    lock_path: pathlib.Path,
    endpoint_for: EndpointFor,
    auth_log: pytest.LogCaptureFixture,
) -> None:
    store.root.mkdir(parents=True, exist_ok=True)
    store.path.write_text('{"schema_version": 1}')
    script = Script([])
    with pytest.raises(CorruptSession) as info:
        run_refresh_transaction(store, make_session(), endpoint_for(script), lock_path)
    assert "session_id" in info.value.reason
    assert store.path.read_text() == '{"schema_version": 1}'
    assert script.requests == []
    lines = [r.getMessage() for r in auth_log.records if r.name == "kitty_auth_refresh"]
    # Real clock here, so the timings are whatever they were; the shape is what is asserted.
    assert len(lines) == 1
    assert re.fullmatch(
        r"refresh outcome=error network_call=false waited_ms=\d+ held_ms=\d+ "
        rf"session={make_session().session_hash} error=CorruptSession",
        lines[0],
    )
    with MachineFileLock(lock_path, acquire_timeout=0):
        pass


def test_rejection_then_corrupt_store_propagates_without_delete(
    store: SessionStore, lock_path: pathlib.Path, endpoint_for: EndpointFor
) -> None:
    session = make_session(ttl_s=-1)
    store.write(session)

    def corrupt() -> None:
        store.path.write_text("[]")

    with pytest.raises(CorruptSession):
        run_refresh_transaction(
            store, session, endpoint_for(Script([then(corrupt, REJECT_INVALID_GRANT)])), lock_path
        )
    assert store.path.read_text() == "[]"


def test_store_write_failure_raises_with_rotated_session(
    store: SessionStore,
    lock_path: pathlib.Path,
    endpoint_for: EndpointFor,
    monkeypatch: pytest.MonkeyPatch,
    auth_log: pytest.LogCaptureFixture,
) -> None:
    session = make_session(ttl_s=-1)
    store.write(session)
    before = store.path.read_bytes()

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    script = Script([then(lambda: monkeypatch.setattr("os.replace", failing_replace), ok())])
    with pytest.raises(StoreWriteFailed) as info:
        run_refresh_transaction(store, session, endpoint_for(script), lock_path)
    monkeypatch.undo()
    assert info.value.session is not None
    assert not same_material(info.value.session, session)
    assert store.path.read_bytes() == before
    assert [p.name for p in store.root.iterdir() if p.name.endswith(".tmp")] == []
    assert any(r.levelno == logging.ERROR for r in auth_log.records)
    with MachineFileLock(lock_path, acquire_timeout=0):
        pass


def test_lock_os_error_propagates(
    store: SessionStore, tmp_path: pathlib.Path, endpoint_for: EndpointFor
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store.write(make_session())
    script = Script([])
    with pytest.raises(OSError):  # noqa: PT011 - any genuine OS error, whatever its errno
        run_refresh_transaction(store, make_session(), endpoint_for(script), blocker / "x.lock")
    assert script.requests == []
    assert store.read() is not None


class SlowReadStore(SessionStore):
    """A store whose read eats the whole hold budget (a slow disk, an NFS stall)."""

    __slots__ = ("clock", "cost_s")

    def __init__(self, root: pathlib.Path, clock: FakeClock, cost_s: float) -> None:
        super().__init__(root)
        self.clock = clock
        self.cost_s = cost_s

    def read(self) -> Session | None:
        self.clock.advance(self.cost_s)
        return super().read()


def test_hold_budget_spent_before_network(
    home: pathlib.Path, lock_path: pathlib.Path, fake_clock: FakeClock, endpoint_for: EndpointFor
) -> None:
    store = SlowReadStore(home / "auth", fake_clock, cost_s=2.0)
    session = make_session(ttl_s=-1)
    store.write(session)
    script = Script([])
    result = run_refresh_transaction(
        store, session, endpoint_for(script), lock_path, max_hold=1.0, clock=fake_clock.clock()
    )
    assert result.outcome is RefreshOutcome.LOCK_TIMEOUT_ERROR
    assert result.error_kind == "hold_budget"
    assert script.requests == []
    assert result.held_s == pytest.approx(2.0)


def test_request_timeout_is_capped_by_remaining_budget(
    home: pathlib.Path, lock_path: pathlib.Path, fake_clock: FakeClock, endpoint_for: EndpointFor
) -> None:
    store = SlowReadStore(home / "auth", fake_clock, cost_s=0.75)
    session = make_session(ttl_s=-1)
    store.write(session)
    script = Script([ok()])
    run_refresh_transaction(
        store, session, endpoint_for(script), lock_path, max_hold=2.0, clock=fake_clock.clock()
    )
    timeouts = script.requests[0].extensions["timeout"]
    assert timeouts["read"] == pytest.approx(1.25)


def test_replay_retry_that_no_longer_fits_gives_up(
    home: pathlib.Path, lock_path: pathlib.Path, fake_clock: FakeClock, endpoint_for: EndpointFor
) -> None:
    store = SlowReadStore(home / "auth", fake_clock, cost_s=0.0)
    session = make_session(ttl_s=-1)
    store.write(session)
    peer = make_session(now=fake_clock.wall)

    def peer_rotates_and_time_passes() -> None:
        store.write(peer)
        store.cost_s = 0.6  # the re-read after the 409 is slow: sleeping 1 s no longer fits

    script = Script([then(peer_rotates_and_time_passes, REPLAY_1)])
    result = run_refresh_transaction(
        store, session, endpoint_for(script), lock_path, max_hold=1.5, clock=fake_clock.clock()
    )
    assert result.outcome is RefreshOutcome.LOCK_TIMEOUT_ERROR
    assert result.error_kind == "replay"
    assert len(script.requests) == 1
    assert store.read() == peer


def test_replay_budget_exhausted_after_sleep(
    store: SessionStore, lock_path: pathlib.Path, fake_clock: FakeClock, endpoint_for: EndpointFor
) -> None:
    session = make_session(ttl_s=-1)
    store.write(session)
    peer = make_session(now=fake_clock.wall)
    clock = fake_clock.clock()
    # Sleeping overshoots (a loaded machine): the retry must not start past the deadline.
    overshoot = dataclasses.replace(clock, sleep=lambda s: fake_clock.advance(s + 5))
    script = Script([then(lambda: store.write(peer), REPLAY_1)])
    result = run_refresh_transaction(
        store, session, endpoint_for(script), lock_path, max_hold=3.0, clock=overshoot
    )
    assert result.outcome is RefreshOutcome.LOCK_TIMEOUT_ERROR
    assert len(script.requests) == 1


def test_locally_expired_refresh_token_still_asks_the_server(
    store: SessionStore, lock_path: pathlib.Path, fake_clock: FakeClock, endpoint_for: EndpointFor
) -> None:
    past = fake_clock.wall.replace(year=2020)
    session = make_session(ttl_s=-1, refresh_expires_at=past)
    store.write(session)
    script = Script([ok()])
    result = run_refresh_transaction(
        store, session, endpoint_for(script), lock_path, clock=fake_clock.clock()
    )
    assert result.outcome is RefreshOutcome.REFRESHED
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"max_hold": 0}, {"max_hold": -1}, {"acquire_timeout": -1}, {"adopt_min_ttl": float("nan")}],
)
def test_bad_arguments_are_rejected(
    kwargs: dict[str, Any],
    store: SessionStore,
    lock_path: pathlib.Path,
    endpoint_for: EndpointFor,
) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        run_refresh_transaction(
            store, make_session(), endpoint_for(Script([])), lock_path, **kwargs
        )


# ---- pure decisions ---------------------------------------------------------------------------


def test_result_str_is_the_log_line_without_tokens() -> None:
    session = make_session()
    result = kitty_auth_refresh.RefreshResult(
        RefreshOutcome.REFRESHED, session, True, 0.0015, 0.25, None, None, None
    )
    assert str(result) == (
        f"refresh outcome=refreshed network_call=true waited_ms=2 held_ms=250 "
        f"session={session.session_hash}"
    )
    for text in (str(result), repr(result)):
        assert session.access_token not in text
        assert session.refresh_token not in text


def test_outcome_vocabulary_is_exactly_eight_strings() -> None:
    assert sorted(o.value for o in RefreshOutcome) == sorted(
        [
            "adopted_newer",
            "refreshed",
            "stale_rejection_preserved",
            "current_rejection_cleared",
            "lock_timeout_adopted",
            "lock_timeout_error",
            "transient_error_preserved",
            "client_rejected",
        ]
    )
    assert all(isinstance(o, str) for o in RefreshOutcome)


def test_delete_has_exactly_two_call_sites() -> None:
    """AUTH-21: only the reconciler and logout may ever call ``delete()``."""
    sites: list[tuple[str, str]] = []
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "delete"
                ):
                    sites.append((path.name, func.name))
    # ast.walk visits nested functions twice (once inside their parent): dedupe by innermost.
    assert sorted(set(sites)) == [
        ("_manager.py", "logout"),
        ("_transaction.py", "_reconcile_rejection"),
    ]
    assert len(sites) == 2
