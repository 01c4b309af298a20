"""The refresh transaction (SPEC §2.3): lock → re-read → decide → at most one request → persist.

The branch decisions are pure functions (``decide_*``) over sessions and numbers; the shell
``run_refresh_transaction`` does the I/O around them, bounds the whole hold with a monotonic
deadline and emits exactly one INFO line (AUTH-26).
"""

from __future__ import annotations

import enum
import logging
import math
import os
from typing import Final

from kitty_filelock import LockTimeout, MachineFileLock, frozen_dataclass, frozen_replace

from ._clock import SYSTEM_CLOCK, Clock
from ._endpoint import TokenEndpoint
from ._errors import (
    ClientConfigRejected,
    RefreshProtocolError,
    RefreshRejected,
    RefreshReplay,
    StoreWriteFailed,
    TransientRefreshError,
)
from ._session import Session, same_material
from ._store import SessionStore

logger = logging.getLogger("kitty_auth_refresh")

DEFAULT_MAX_HOLD_S: Final = 10.0
DEFAULT_ACQUIRE_TIMEOUT_S: Final = 10.0
ADOPT_MIN_TTL_S: Final = 5.0
LOCK_TIMEOUT_MIN_TTL_S: Final = 5.0
LOCK_LABEL: Final = "refresh"


class RefreshOutcome(enum.StrEnum):
    """How a transaction ended. Exactly these eight values.

    ``client_rejected`` (issue 14): the server rejected the client configuration, not the
    refresh token. Non-destructive like ``transient_error_preserved``, but retrying soon cannot
    help and logging in again cannot either, so it is its own outcome.
    """

    ADOPTED_NEWER = "adopted_newer"
    REFRESHED = "refreshed"
    STALE_REJECTION_PRESERVED = "stale_rejection_preserved"
    CURRENT_REJECTION_CLEARED = "current_rejection_cleared"
    LOCK_TIMEOUT_ADOPTED = "lock_timeout_adopted"
    LOCK_TIMEOUT_ERROR = "lock_timeout_error"
    TRANSIENT_ERROR_PRESERVED = "transient_error_preserved"
    CLIENT_REJECTED = "client_rejected"


class RejectionCause(enum.StrEnum):
    """Why a session ended: the ``cause`` of ``current_rejection_cleared``/relogin."""

    INVALID_GRANT = "invalid_grant"
    SESSION_INVALID = "session_invalid"
    SESSION_REMOVED = "session_removed"
    STORAGE_CORRUPT = "storage_corrupt"


@frozen_dataclass
class RefreshResult:
    """What one transaction did. ``session`` is the session the caller should use (None = ended)."""

    outcome: RefreshOutcome
    session: Session | None
    network_call: bool
    waited_s: float
    held_s: float
    cause: RejectionCause | None = None
    error_kind: str | None = None
    retry_after: int | None = None
    status: int | None = None  # the HTTP status of a client_rejected answer
    description: str | None = None  # scrubbed server text of a client_rejected answer

    def __str__(self) -> str:
        return _result_line(self, self.session.session_hash if self.session else None)


# ---- pure decisions ---------------------------------------------------------------------------


class Step(enum.StrEnum):
    """What to do after re-reading the store under the lock (L1..L3)."""

    SESSION_REMOVED = "session_removed"
    ADOPT_NEWER = "adopt_newer"
    HOLD_BUDGET_SPENT = "hold_budget_spent"
    REFRESH = "refresh"


def decide_under_lock(
    persisted: Session | None,
    in_memory: Session,
    persisted_ttl_s: float,
    adopt_min_ttl: float,
    budget_s: float,
) -> Step:
    if persisted is None:
        return Step.SESSION_REMOVED  # logged out / cleared: never resurrect from memory
    if not same_material(persisted, in_memory) and persisted_ttl_s > adopt_min_ttl:
        return Step.ADOPT_NEWER
    if budget_s <= 0:
        return Step.HOLD_BUDGET_SPENT
    return Step.REFRESH


class Reconcile(enum.StrEnum):
    """After a rejection: compare-then-clear."""

    NOTHING_TO_DELETE = "nothing_to_delete"
    DELETE_CURRENT = "delete_current"
    STALE = "stale"


def decide_after_rejection(reread: Session | None, rejected: Session) -> Reconcile:
    if reread is None:
        return Reconcile.NOTHING_TO_DELETE
    if same_material(reread, rejected):
        return Reconcile.DELETE_CURRENT
    return Reconcile.STALE


class ReplayStep(enum.StrEnum):
    SESSION_REMOVED = "session_removed"
    GIVE_UP = "give_up"
    RETRY = "retry"


def decide_after_replay(
    reread: Session | None, presented: Session, retry_after: int, budget_s: float
) -> ReplayStep:
    if reread is None:
        return ReplayStep.SESSION_REMOVED
    if reread.refresh_token == presented.refresh_token:
        return ReplayStep.GIVE_UP  # the spent token is never re-sent
    if retry_after >= budget_s:
        return ReplayStep.GIVE_UP
    return ReplayStep.RETRY


def _format_line(
    outcome: str,
    network_call: bool,
    waited_s: float,
    held_s: float,
    session_hash: str | None,
    *,
    cause: str | None = None,
    error: str | None = None,
    retry_after: int | None = None,
    status: int | None = None,
) -> str:
    """The AUTH-26 line. Never contains a token: only the outcome, timings and a hash."""
    line = (
        f"refresh outcome={outcome} network_call={'true' if network_call else 'false'} "
        f"waited_ms={round(waited_s * 1000)} held_ms={round(held_s * 1000)} "
        f"session={session_hash or '-'}"
    )
    if cause is not None:
        line += f" cause={cause}"
    if status is not None:
        line += f" status={status}"
    if error is not None:
        line += f" error={error}"
    if retry_after is not None:
        line += f" retry_after={retry_after}"
    return line


def _result_line(result: RefreshResult, session_hash: str | None) -> str:
    return _format_line(
        result.outcome.value,
        result.network_call,
        result.waited_s,
        result.held_s,
        session_hash,
        cause=result.cause.value if result.cause is not None else None,
        error=result.error_kind,
        retry_after=result.retry_after,
        status=result.status,
    )


# ---- the shell --------------------------------------------------------------------------------


def run_refresh_transaction(
    store: SessionStore,
    in_memory: Session,
    endpoint: TokenEndpoint,
    lock_path: str | os.PathLike[str],
    *,
    max_hold: float = DEFAULT_MAX_HOLD_S,
    acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT_S,
    adopt_min_ttl: float = ADOPT_MIN_TTL_S,
    clock: Clock = SYSTEM_CLOCK,
) -> RefreshResult:
    """Run one refresh transaction for ``in_memory``; see SPEC §2.3 for every branch.

    Raises only for non-outcomes: ``CorruptSession`` (store unreadable; nothing deleted),
    ``StoreWriteFailed`` (rotated session in ``.session``), genuine ``OSError`` from the lock or
    the store. The lock is released on every path.
    """
    for name, value, minimum in (
        ("max_hold", max_hold, 0.0),
        ("acquire_timeout", acquire_timeout, 0.0),
        ("adopt_min_ttl", adopt_min_ttl, 0.0),
    ):
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= minimum):
            raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")
    if max_hold <= 0:
        raise ValueError(f"max_hold must be > 0, got {max_hold!r}")

    tx = _Transaction(store, in_memory, endpoint, clock, adopt_min_ttl)
    started = clock.monotonic()
    lock = MachineFileLock(
        lock_path, acquire_timeout=acquire_timeout, label=LOCK_LABEL, max_hold=max_hold
    )
    result: RefreshResult | None = None
    try:
        try:
            lock.acquire()
        except LockTimeout:
            waited = clock.monotonic() - started
            result = tx.after_lock_timeout(waited)
            return result
        acquired = clock.monotonic()
        tx.waited_s = acquired - started
        tx.acquired_at = acquired
        tx.deadline = acquired + max_hold  # the WHOLE hold, not just the network leg
        try:
            result = tx.under_lock()
        finally:
            lock.release()
        result = frozen_replace(result, held_s=clock.monotonic() - acquired)
        return result
    except BaseException as exc:
        # Non-outcome exit: one line still, naming the exception type only (never its text).
        result = None
        held = clock.monotonic() - tx.acquired_at if tx.acquired_at else 0.0
        shown = tx.persisted or in_memory
        logger.info(
            _format_line(
                "error",
                tx.network_called,
                tx.waited_s,
                held,
                shown.session_hash,
                error=type(exc).__name__,
            )
        )
        raise
    finally:
        if result is not None:
            shown = result.session or tx.persisted or in_memory
            logger.info(_result_line(result, shown.session_hash))


class _Transaction:
    """Mutable state of one run; every method returns a ``RefreshResult`` (held_s filled later)."""

    def __init__(
        self,
        store: SessionStore,
        in_memory: Session,
        endpoint: TokenEndpoint,
        clock: Clock,
        adopt_min_ttl: float,
    ) -> None:
        self.store = store
        self.in_memory = in_memory
        self.endpoint = endpoint
        self.clock = clock
        self.adopt_min_ttl = adopt_min_ttl
        self.waited_s = 0.0
        self.acquired_at = 0.0
        self.deadline = 0.0
        self.persisted: Session | None = None
        self.network_called = False

    def _result(
        self,
        outcome: RefreshOutcome,
        session: Session | None,
        network_call: bool,
        *,
        cause: RejectionCause | None = None,
        error_kind: str | None = None,
        retry_after: int | None = None,
    ) -> RefreshResult:
        return RefreshResult(
            outcome, session, network_call, self.waited_s, 0.0, cause, error_kind, retry_after
        )

    def _budget(self) -> float:
        return self.deadline - self.clock.monotonic()

    def after_lock_timeout(self, waited: float) -> RefreshResult:
        """T0-timeout: never refresh without the lock; adopt a still-valid persisted token."""
        self.waited_s = waited
        persisted = self.store.read()  # CorruptSession propagates
        self.persisted = persisted
        if persisted is not None and persisted.access_ttl_s(self.clock.now()) > (
            LOCK_TIMEOUT_MIN_TTL_S
        ):
            return self._result(RefreshOutcome.LOCK_TIMEOUT_ADOPTED, persisted, False)
        return self._result(
            RefreshOutcome.LOCK_TIMEOUT_ERROR, self.in_memory, False, error_kind="lock_busy"
        )

    def under_lock(self) -> RefreshResult:
        persisted = self.store.read()  # L1: CorruptSession propagates, nothing is deleted
        self.persisted = persisted
        ttl = persisted.access_ttl_s(self.clock.now()) if persisted else 0.0
        step = decide_under_lock(persisted, self.in_memory, ttl, self.adopt_min_ttl, self._budget())
        if step is Step.SESSION_REMOVED:
            return self._result(
                RefreshOutcome.CURRENT_REJECTION_CLEARED,
                None,
                False,
                cause=RejectionCause.SESSION_REMOVED,
            )
        assert persisted is not None  # for mypy: SESSION_REMOVED is the only None branch
        if step is Step.ADOPT_NEWER:
            return self._result(RefreshOutcome.ADOPTED_NEWER, persisted, False)
        if step is Step.HOLD_BUDGET_SPENT:
            return self._result(
                RefreshOutcome.LOCK_TIMEOUT_ERROR, self.in_memory, False, error_kind="hold_budget"
            )
        return self._refresh(persisted)

    def _refresh(self, persisted: Session) -> RefreshResult:
        # L3: ALWAYS the refresh token re-read under the lock, never the in-memory copy.
        try:
            budget = min(self.endpoint.timeout, self._budget())
            self.network_called = True
            new = self.endpoint.refresh(persisted, timeout=budget)
        except RefreshRejected as exc:
            return self._reconcile_rejection(persisted, RejectionCause(exc.kind))
        except RefreshReplay as exc:
            return self._after_replay(persisted, exc.retry_after)
        except ClientConfigRejected as exc:
            return frozen_replace(
                self._result(RefreshOutcome.CLIENT_REJECTED, persisted, True, error_kind=exc.error),
                status=exc.status,
                description=exc.description,
            )
        except (TransientRefreshError, RefreshProtocolError) as exc:
            return self._result(
                RefreshOutcome.TRANSIENT_ERROR_PRESERVED, persisted, True, error_kind=exc.kind
            )
        return self._persist(new)

    def _persist(self, new: Session) -> RefreshResult:
        # Allowed past the deadline: dropping an already-rotated token would strand the family.
        try:
            self.store.write(new)
        except StoreWriteFailed as exc:
            logger.error(
                "refresh succeeded but the session could not be saved path=%s reason=%s; "
                "the rotated session is kept in memory only",
                exc.path,
                exc.reason,
            )
            raise
        return self._result(RefreshOutcome.REFRESHED, new, True)

    def _reconcile_rejection(self, rejected: Session, cause: RejectionCause) -> RefreshResult:
        """Compare-then-clear: delete only if the store still holds exactly what was rejected."""
        reread = self.store.read()  # CorruptSession propagates
        decision = decide_after_rejection(reread, rejected)
        if decision is Reconcile.STALE:
            return self._result(RefreshOutcome.STALE_REJECTION_PRESERVED, reread, True)
        if decision is Reconcile.DELETE_CURRENT:
            self.store.delete()  # one of the two delete() call sites (the other: logout)
        return self._result(RefreshOutcome.CURRENT_REJECTION_CLEARED, None, True, cause=cause)

    def _after_replay(self, presented: Session, retry_after: int) -> RefreshResult:
        reread = self.store.read()
        step = decide_after_replay(reread, presented, retry_after, self._budget())
        if step is ReplayStep.SESSION_REMOVED:
            return self._result(
                RefreshOutcome.CURRENT_REJECTION_CLEARED,
                None,
                True,
                cause=RejectionCause.SESSION_REMOVED,
            )
        give_up = self._result(
            RefreshOutcome.LOCK_TIMEOUT_ERROR,
            self.in_memory,
            True,
            error_kind="replay",
            retry_after=retry_after,
        )
        if step is ReplayStep.GIVE_UP:
            return give_up
        assert reread is not None  # for mypy: RETRY implies newer persisted material
        if retry_after > 0:
            self.clock.sleep(retry_after)
        budget = self._budget()
        if budget <= 0:
            return give_up
        try:
            new = self.endpoint.refresh(reread, timeout=min(self.endpoint.timeout, budget))
        except (
            RefreshRejected,
            RefreshReplay,
            TransientRefreshError,
            RefreshProtocolError,
            ClientConfigRejected,
        ):
            return give_up  # one retry only, and never a delete from this branch
        return self._persist(new)
