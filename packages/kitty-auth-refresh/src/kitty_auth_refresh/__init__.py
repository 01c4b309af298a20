"""kitty-auth-refresh: keep one OAuth session alive across many processes on one machine.

Every refresh runs as one transaction under a machine-wide lock: re-read the persisted session,
adopt newer material if a peer already refreshed, otherwise present the *persisted* refresh
token once, and delete the session only when the server rejected exactly the material that is
still persisted (compare-then-clear). Transient failures never log anyone out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kitty_filelock import installed_version, lazy_exports

if TYPE_CHECKING:
    from ._bearer import TokenAuth  # subclasses httpx.Auth: httpx loads only with it
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

#: Where each public name lives; each loads on first use, so importing the package is cheap.
_HOMES = {
    "Clock": "_clock",
    "TokenEndpoint": "_endpoint",
    "ClientConfigRejected": "_errors",
    "ConfigError": "_errors",
    "CorruptSession": "_errors",
    "KittyAuthError": "_errors",
    "NotAuthenticated": "_errors",
    "RefreshLockBusy": "_errors",
    "RefreshProtocolError": "_errors",
    "RefreshRejected": "_errors",
    "RefreshReplay": "_errors",
    "ReloginRequired": "_errors",
    "RequestNotReplayable": "_errors",
    "StoreWriteFailed": "_errors",
    "TransientRefreshError": "_errors",
    "UnreadableSession": "_errors",
    "default_home": "_home",
    "LogoutResult": "_manager",
    "SyncTokenManager": "_manager",
    "TokenManager": "_manager",
    "MASK": "_mask",
    "SecretMask": "_mask",
    "Session": "_session",
    "UnverifiedClaims": "_session",
    "same_material": "_session",
    "unverified_claims": "_session",
    "AuthState": "_status",
    "AuthStatus": "_status",
    "auth_status": "_status",
    "SessionStore": "_store",
    "session_from_token_response": "_token_response",
    "RefreshOutcome": "_transaction",
    "RefreshResult": "_transaction",
    "RejectionCause": "_transaction",
    "run_refresh_transaction": "_transaction",
    "TokenAuth": "_bearer",
}
__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
