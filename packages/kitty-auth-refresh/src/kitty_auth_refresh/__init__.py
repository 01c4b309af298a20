"""kitty-auth-refresh: keep one OAuth session alive across many processes on one machine.

Every refresh runs as one transaction under a machine-wide lock: re-read the persisted session,
adopt newer material if a peer already refreshed, otherwise present the *persisted* refresh
token once, and delete the session only when the server rejected exactly the material that is
still persisted (compare-then-clear). Transient failures never log anyone out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kitty_filelock import installed_version

from ._clock import Clock
from ._endpoint import TokenEndpoint
from ._errors import (
    ClientConfigRejected,
    ConfigError,
    CorruptSession,
    KittyAuthError,
    NotAuthenticated,
    RefreshLockBusy,
    RefreshProtocolError,
    RefreshRejected,
    RefreshReplay,
    ReloginRequired,
    RequestNotReplayable,
    StoreWriteFailed,
    TransientRefreshError,
    UnreadableSession,
)
from ._home import default_home
from ._manager import LogoutResult, SyncTokenManager, TokenManager
from ._mask import MASK, SecretMask
from ._session import Session, UnverifiedClaims, same_material, unverified_claims
from ._status import AuthState, AuthStatus, auth_status
from ._store import SessionStore
from ._token_response import session_from_token_response
from ._transaction import RefreshOutcome, RefreshResult, RejectionCause, run_refresh_transaction

if TYPE_CHECKING:
    from ._bearer import TokenAuth

# Read cheaply by kitty-filelock: importing importlib.metadata would cost more than this package.
__version__: str = installed_version("kitty-auth-refresh") or "0.0.0+unknown"

__all__ = [
    "MASK",
    "AuthState",
    "AuthStatus",
    "ClientConfigRejected",
    "Clock",
    "ConfigError",
    "CorruptSession",
    "KittyAuthError",
    "LogoutResult",
    "NotAuthenticated",
    "RefreshLockBusy",
    "RefreshOutcome",
    "RefreshProtocolError",
    "RefreshRejected",
    "RefreshReplay",
    "RefreshResult",
    "RejectionCause",
    "ReloginRequired",
    "RequestNotReplayable",
    "SecretMask",
    "Session",
    "SessionStore",
    "StoreWriteFailed",
    "SyncTokenManager",
    "TokenAuth",
    "TokenEndpoint",
    "TokenManager",
    "TransientRefreshError",
    "UnreadableSession",
    "UnverifiedClaims",
    "__version__",
    "auth_status",
    "default_home",
    "run_refresh_transaction",
    "same_material",
    "session_from_token_response",
    "unverified_claims",
]


def __getattr__(name: str) -> object:
    # TokenAuth subclasses httpx.Auth, so it is loaded on first use: importing httpx costs
    # ~100 ms, which read-only callers (``kitty-doctor``) never need to pay.
    if name == "TokenAuth":
        from ._bearer import TokenAuth

        return TokenAuth
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
