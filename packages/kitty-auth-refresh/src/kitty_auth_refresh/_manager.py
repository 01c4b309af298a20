"""``TokenManager`` (async) and ``SyncTokenManager``: refresh ahead, single-flight, outcome mapping.

Both share ``_ManagerCore``, whose methods are blocking and hold all the policy (AUTH-29, -32,
-34 .. -36). The async manager runs them in a worker thread so the event loop never blocks
(AUTH-31); each manager adds its own single-flight lock (AUTH-30), a fast path only: correctness
across processes comes from the refresh lock inside the transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar

from kitty_filelock import LockTimeout, MachineFileLock, frozen_dataclass

from ._clock import SYSTEM_CLOCK, Clock
from ._endpoint import TokenEndpoint
from ._errors import (
    ClientConfigRejected,
    CorruptSession,
    NotAuthenticated,
    RefreshLockBusy,
    ReloginRequired,
    StoreWriteFailed,
    TransientRefreshError,
)
from ._session import Session, same_material
from ._store import SessionStore
from ._transaction import (
    DEFAULT_ACQUIRE_TIMEOUT_S,
    DEFAULT_MAX_HOLD_S,
    RefreshOutcome,
    RefreshResult,
    RejectionCause,
    run_refresh_transaction,
)

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("kitty_auth_refresh")
_P = ParamSpec("_P")
_T = TypeVar("_T")

REFRESH_MARGIN_S: Final = 60.0
REFRESH_JITTER_S: Final = 30.0
BACKOFF_INITIAL_S: Final = 2.0
BACKOFF_MAX_S: Final = 60.0
LOCK_FILE_NAME: Final = "refresh.lock"
_JITTER_CACHE_MAX: Final = 256

_ADOPTING: Final = frozenset(
    {
        RefreshOutcome.REFRESHED,
        RefreshOutcome.ADOPTED_NEWER,
        RefreshOutcome.LOCK_TIMEOUT_ADOPTED,
        RefreshOutcome.STALE_REJECTION_PRESERVED,
    }
)

# One uniform draw per material identity per process (AUTH-29), shared by every manager so two
# managers in one process agree on when a given session is due. Keyed by a digest: the cache
# must not become a second copy of the tokens.
_jitter_draws: dict[str, float] = {}
_jitter_guard = threading.Lock()


@frozen_dataclass
class LogoutResult:
    """What ``logout()`` did. The local session is gone whatever the provider answered.

    ``revoked``: True when the provider's revocation endpoint (RFC 7009) confirmed it, False
    when it failed or could not be reached (one warning was logged), None when nothing was
    sent (no revocation endpoint configured, or no session to revoke).
    """

    session_removed: bool
    revoked: bool | None


def _material_key(session: Session) -> str:
    digest = hashlib.sha256()
    digest.update(session.session_id.encode("utf-8"))
    digest.update(b"\0")
    digest.update(session.refresh_token.encode("utf-8"))
    return digest.hexdigest()


def _jitter_fraction(session: Session, rng: random.Random) -> float:
    key = _material_key(session)
    with _jitter_guard:
        if key not in _jitter_draws:
            if len(_jitter_draws) >= _JITTER_CACHE_MAX:
                _jitter_draws.clear()  # old materials are dead after rotation; bound the memory
            _jitter_draws[key] = rng.random()
        return _jitter_draws[key]


def _check_number(name: str, value: object, *, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):  # type: ignore[operator]  # ok checked
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {need}, got {value!r}")
    return float(value)  # type: ignore[arg-type]  # ok checked above


class _ManagerCore:
    """The blocking policy shared by both managers. Not thread-safe by itself."""

    def __init__(
        self,
        store: SessionStore,
        endpoint: TokenEndpoint,
        lock_path: str | os.PathLike[str] | None,
        *,
        refresh_margin: float,
        jitter: float,
        max_hold: float,
        acquire_timeout: float,
        login_command: str | None,
        clock: Clock,
        rng: random.Random | None,
    ) -> None:
        if not isinstance(store, SessionStore):
            raise TypeError(f"store must be a SessionStore, got {type(store).__name__}")
        if not isinstance(endpoint, TokenEndpoint):
            raise TypeError(f"endpoint must be a TokenEndpoint, got {type(endpoint).__name__}")
        self.store = store
        self.endpoint = endpoint
        self.lock_path = os.fspath(lock_path) if lock_path is not None else None
        self.refresh_margin = _check_number("refresh_margin", refresh_margin)
        self.jitter = _check_number("jitter", jitter)
        self.max_hold = _check_number("max_hold", max_hold, positive=True)
        self.acquire_timeout = _check_number("acquire_timeout", acquire_timeout)
        # The app's own login command, when its store names the app (SessionStore(profile=)).
        if login_command is None and store.profile is not None:
            login_command = store.profile.login_command
        self.login_command = login_command
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()  # jitter, not cryptography
        self.session: Session | None = None
        self._backoff_s = 0.0
        self._retry_at: float | None = None
        # What the last failed transaction raised (or would have raised, had a valid token not
        # been served instead): raised again, without a request, while the backoff lasts.
        self._backoff_error: ClientConfigRejected | TransientRefreshError | None = None

    @property
    def resolved_lock_path(self) -> str:
        return self.lock_path or os.fspath(self.store.root / LOCK_FILE_NAME)

    # ---- pure-ish policy ---------------------------------------------------------------------

    def margin(self, session: Session) -> float:
        """AUTH-29: m = min(margin, lifetime/2) + j, j ~ U(0, min(jitter, lifetime/4))."""
        lifetime = (session.access_expires_at - session.issued_at).total_seconds()
        if lifetime <= 0:
            return 0.0
        jitter_max = min(self.jitter, lifetime / 4)
        return min(self.refresh_margin, lifetime / 2) + jitter_max * _jitter_fraction(
            session, self.rng
        )

    def needs_refresh(self, session: Session) -> bool:
        return session.access_ttl_s(self.clock.now()) <= self.margin(session)

    def fresh_token(self) -> str | None:
        """The fast path (AUTH-36): no lock, no file, no network."""
        session = self.session
        if session is not None and not self.needs_refresh(session):
            return session.access_token
        return None

    def _in_backoff(self) -> bool:
        return self._retry_at is not None and self.clock.monotonic() < self._retry_at

    def _back_off(self) -> None:
        self._backoff_s = (
            min(BACKOFF_MAX_S, self._backoff_s * 2) if self._backoff_s else (BACKOFF_INITIAL_S)
        )
        self._retry_at = self.clock.monotonic() + self._backoff_s

    def _reset_backoff(self) -> None:
        self._backoff_s = 0.0
        self._retry_at = None
        self._backoff_error = None

    # ---- blocking operations -----------------------------------------------------------------

    def load(self) -> Session:
        if self.session is not None:
            return self.session
        try:
            session = self.store.read()
        except CorruptSession as exc:
            raise ReloginRequired(
                RejectionCause.STORAGE_CORRUPT.value, self.login_command, exc.path
            ) from exc
        if session is None:
            raise NotAuthenticated(str(self.store.path), self.login_command)
        self.session = session
        return session

    def refresh_cycle(self, force: bool, seen: Session | None) -> RefreshResult | None:
        """Called under the single-flight lock; re-checks the need first (AUTH-30)."""
        session = self.load()
        if force:
            if seen is not None and not same_material(session, seen):
                return None  # a concurrent caller already replaced the material we saw
        elif not self.needs_refresh(session):
            return None
        elif self._in_backoff():
            # Back off the NETWORK, not the (lock-free) look at the file: a peer may have
            # refreshed meanwhile, and riding a superseded token to its last millisecond gets
            # calls rejected (the server's clock started it earlier than our receipt time).
            if self._adopt_newer_from_disk(session):
                session = self.session or session
                if not self.needs_refresh(session):
                    return None
            elif session.access_ttl_s(self.clock.now()) > 0:
                return None  # work while valid; do not hammer a failing server
            elif self._backoff_error is not None:
                # Nothing valid to serve, and an expired token does not lift the backoff: a
                # process polling at 50 Hz through an outage would send 50 refreshes a second.
                raise self._backoff_error.with_traceback(None)
        result = self._transact(session)
        if self._apply(result):
            assert self.session is not None  # for mypy: _apply returned True after adopting
            result = self._transact(self.session)
            self._apply(result)
        return result

    def refresh_rejected(self, rejected: str) -> None:
        """The resource server refused the access token ``rejected`` (HTTP 401): force one
        refresh through the transaction, unless the material already moved past it.

        Called under the single-flight lock, so N callers rejected together cause one refresh:
        the first replaces the token, the others find it replaced and use the new one. Across
        processes the transaction re-reads the file under the machine-wide lock and adopts what
        a peer persisted instead of presenting a spent refresh token. Raises the failure when no
        new token could be had (the old one was just refused: serving it again is pointless).
        """
        session = self.load()
        if session.access_token != rejected:
            return  # a concurrent caller already replaced it: no second refresh
        if self._in_backoff() and self._backoff_error is not None:
            # A refused token does not lift the backoff either: one refresh per window, not one
            # per 401, while the token endpoint is failing.
            if not self._adopt_newer_from_disk(session):
                raise self._backoff_error.with_traceback(None)
            return
        self.refresh_cycle(True, session)
        current = self.session
        if (
            current is not None
            and current.access_token == rejected
            and self._backoff_error is not None
        ):
            raise self._backoff_error.with_traceback(None)

    def _adopt_newer_from_disk(self, session: Session) -> bool:
        """Adopt persisted material that differs from ours and lives longer. No lock, no network."""
        try:
            persisted = self.store.read()
        except CorruptSession:
            return False  # keep serving from memory; the next transaction reports it
        now = self.clock.now()
        if (
            persisted is None
            or same_material(persisted, session)
            or persisted.access_ttl_s(now) <= session.access_ttl_s(now)
        ):
            return False
        self.session = persisted
        self._reset_backoff()
        return True

    def _transact(self, session: Session) -> RefreshResult:
        try:
            return run_refresh_transaction(
                self.store,
                session,
                self.endpoint,
                self.resolved_lock_path,
                max_hold=self.max_hold,
                acquire_timeout=self.acquire_timeout,
                adopt_min_ttl=self.margin(session),
                clock=self.clock,
            )
        except CorruptSession as exc:
            self.session = None
            raise ReloginRequired(
                RejectionCause.STORAGE_CORRUPT.value, self.login_command, exc.path
            ) from exc
        except StoreWriteFailed as exc:
            # The rotated tokens exist only in memory now: keep working from them.
            if exc.session is not None:
                self.session = exc.session
            self._reset_backoff()
            raise

    def _apply(self, result: RefreshResult) -> bool:
        """AUTH-32 mapping. Returns True when one follow-up transaction is due."""
        outcome = result.outcome
        if outcome in _ADOPTING:
            assert result.session is not None  # every adopting outcome carries a session
            self.session = result.session
            self._reset_backoff()
            return self.needs_refresh(result.session)
        if outcome is RefreshOutcome.CURRENT_REJECTION_CLEARED:
            self.session = None
            cause = result.cause or RejectionCause.SESSION_REMOVED
            raise ReloginRequired(cause.value, self.login_command, str(self.store.path))
        if outcome is RefreshOutcome.CLIENT_REJECTED:
            if result.session is not None:
                self.session = result.session
            self._back_off()
            self._backoff_error = ClientConfigRejected(
                result.status or 400, result.error_kind or "invalid_client", result.description
            )
            current = self.session
            if current is not None and current.access_ttl_s(self.clock.now()) > 0:
                return False
            raise self._backoff_error
        # lock_timeout_error / transient_error_preserved: never destructive.
        current = self.session
        if result.session is not None and (
            current is None or not same_material(result.session, current)
        ):
            self.session = current = result.session
        self._back_off()
        if outcome is RefreshOutcome.LOCK_TIMEOUT_ERROR:
            self._backoff_error = RefreshLockBusy(result.error_kind or "lock_busy")
        else:
            self._backoff_error = TransientRefreshError(result.error_kind or "server_error")
        if current is not None and current.access_ttl_s(self.clock.now()) > 0:
            return False  # the access token still works: keep serving it
        raise self._backoff_error

    def _store_lock(self, label: str) -> MachineFileLock:
        return MachineFileLock(
            self.resolved_lock_path,
            acquire_timeout=self.acquire_timeout,
            label=label,
            max_hold=self.max_hold,
        )

    def save_login(self, session: Session) -> None:
        if not isinstance(session, Session):
            raise TypeError(f"save_login needs a Session, got {type(session).__name__}")
        try:
            with self._store_lock("login"):  # serialise with refreshes (AUTH-35)
                self.store.write(session)
        except LockTimeout as exc:
            raise RefreshLockBusy("lock_busy", None, "could not take the refresh lock") from exc
        self.session = session
        self._reset_backoff()

    def logout(self) -> LogoutResult:
        """Explicit logout: legitimate reason (1) to lose the session (AUTH-01, AUTH-35)."""
        shown = self.session
        try:
            with self._store_lock("logout"):
                if shown is None:
                    with contextlib.suppress(CorruptSession):
                        shown = self.store.read()
                self.store.delete()  # one of the two delete() call sites (the other: reconciler)
        except LockTimeout as exc:
            raise RefreshLockBusy("lock_busy", None, "could not take the refresh lock") from exc
        self.session = None
        self._reset_backoff()
        logger.info("logout session=%s", shown.session_hash if shown else "-")
        revoked: bool | None = None
        if shown is not None and self.endpoint.revocation_url is not None:
            # After the lock is released: a slow or down revocation endpoint must not hold it.
            # The local session is already gone whatever the server says (RFC 7009 §2.2).
            revoked = self.endpoint.revoke(shown.refresh_token, "refresh_token")
        return LogoutResult(session_removed=shown is not None, revoked=revoked)

    def access_token_after_cycle(self) -> str:
        if self.session is None:  # pragma: no cover - refresh_cycle raises before this happens
            raise NotAuthenticated(str(self.store.path), self.login_command)
        return self.session.access_token


class TokenManager:
    """Async access to a valid access token for one shared session.

    ``get_access_token()`` returns the in-memory token while it is fresh (no lock, no file, no
    network) and otherwise runs the refresh transaction in a worker thread.
    """

    def __init__(
        self,
        store: SessionStore,
        endpoint: TokenEndpoint,
        lock_path: str | os.PathLike[str] | None = None,
        *,
        refresh_margin: float = REFRESH_MARGIN_S,
        jitter: float = REFRESH_JITTER_S,
        max_hold: float = DEFAULT_MAX_HOLD_S,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_S,
        login_command: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._core = _ManagerCore(
            store,
            endpoint,
            lock_path,
            refresh_margin=refresh_margin,
            jitter=jitter,
            max_hold=max_hold,
            acquire_timeout=acquire_timeout,
            login_command=login_command,
            clock=clock,
            rng=rng,
        )
        self._flight: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def session(self) -> Session | None:
        return self._core.session

    async def _single_flight(
        self, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """`call` in a worker thread, one at a time per manager."""
        # Imported here: a program that only uses the synchronous manager never pays for asyncio.
        import asyncio

        # Created lazily in the running loop; a manager reused under a new loop gets a new lock.
        loop = asyncio.get_running_loop()
        if self._flight is None or self._flight[0] is not loop:
            self._flight = (loop, asyncio.Lock())
        async with self._flight[1]:
            return await asyncio.to_thread(call, *args, **kwargs)

    async def get_access_token(self, rejected: str | None = None) -> str:
        """A valid access token, refreshed ahead of expiry.

        ``rejected``: an access token the resource server just refused (HTTP 401). If it is
        still the current one, one refresh is forced first (``TokenAuth`` does this for you).
        """
        if rejected is None:
            token = self._core.fresh_token()
            if token is not None:
                return token
        with contextlib.suppress(StoreWriteFailed):  # the rotated session is in memory
            if rejected is None:
                await self.refresh_if_needed()
            else:
                await self._single_flight(self._core.refresh_rejected, rejected)
        return self._core.access_token_after_cycle()

    async def refresh_if_needed(self, force: bool = False) -> RefreshResult | None:
        seen = self._core.session
        return await self._single_flight(self._core.refresh_cycle, force, seen)

    async def save_login(self, session: Session) -> None:
        await self._single_flight(self._core.save_login, session)

    async def logout(self) -> LogoutResult:
        return await self._single_flight(self._core.logout)


class SyncTokenManager:
    """The blocking twin of ``TokenManager`` for synchronous CLIs; same constructor and API."""

    def __init__(
        self,
        store: SessionStore,
        endpoint: TokenEndpoint,
        lock_path: str | os.PathLike[str] | None = None,
        *,
        refresh_margin: float = REFRESH_MARGIN_S,
        jitter: float = REFRESH_JITTER_S,
        max_hold: float = DEFAULT_MAX_HOLD_S,
        acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_S,
        login_command: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._core = _ManagerCore(
            store,
            endpoint,
            lock_path,
            refresh_margin=refresh_margin,
            jitter=jitter,
            max_hold=max_hold,
            acquire_timeout=acquire_timeout,
            login_command=login_command,
            clock=clock,
            rng=rng,
        )
        self._flight = threading.Lock()

    @property
    def session(self) -> Session | None:
        return self._core.session

    def get_access_token(self, rejected: str | None = None) -> str:
        """A valid access token; ``rejected`` as for ``TokenManager.get_access_token``."""
        if rejected is None:
            token = self._core.fresh_token()
            if token is not None:
                return token
        with contextlib.suppress(StoreWriteFailed):  # the rotated session is in memory
            if rejected is None:
                self.refresh_if_needed()
            else:
                with self._flight:
                    self._core.refresh_rejected(rejected)
        return self._core.access_token_after_cycle()

    def refresh_if_needed(self, force: bool = False) -> RefreshResult | None:
        seen = self._core.session
        with self._flight:
            return self._core.refresh_cycle(force, seen)

    def save_login(self, session: Session) -> None:
        with self._flight:
            self._core.save_login(session)

    def logout(self) -> LogoutResult:
        with self._flight:
            return self._core.logout()
