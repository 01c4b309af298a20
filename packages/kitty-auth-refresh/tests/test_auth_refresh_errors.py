"""The error tree of SPEC §0.6: shape, messages, pickling, and no token anywhere."""

from __future__ import annotations

import pickle

import pytest

from _authkit import make_session
from kitty_auth_refresh import (
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
)

SESSION = make_session()

ERRORS: list[tuple[KittyAuthError, tuple[type[BaseException], ...], str]] = [
    (ConfigError("KITTY_HOME", "rel", "use an absolute path"), (ValueError,), "KITTY_HOME"),
    (CorruptSession("/h/auth/session.json", "file is not UTF-8 text"), (ValueError,), "UTF-8"),
    (NotAuthenticated("/h/auth/session.json", "acme login"), (), "acme login"),
    (NotAuthenticated(), (), "log in again"),
    (ReloginRequired("session_invalid", "acme login"), (), "ended the session"),
    (ReloginRequired("weird_cause"), (), "weird_cause"),
    (RefreshRejected("invalid_grant", "token expired", 400), (), "HTTP 400, invalid_grant"),
    (RefreshRejected("session_invalid"), (), "session_invalid"),
    (RefreshReplay(3), (), "retry_after=3s"),
    (RefreshProtocolError(418, "teapot"), (), "HTTP 418"),
    (RefreshProtocolError(None), (), "unexpected answer"),
    (TransientRefreshError("server_error", 503, "down"), (ConnectionError, OSError), "HTTP 503"),
    (TransientRefreshError("transport"), (ConnectionError,), "transport"),
    (RefreshLockBusy("hold_budget"), (TransientRefreshError, ConnectionError), "hold_budget"),
    (RefreshLockBusy("replay", None, "no newer material"), (TransientRefreshError,), "replay"),
    (StoreWriteFailed("/h/auth/session.json", "ENOSPC", SESSION), (OSError,), "ENOSPC"),
    (RequestNotReplayable("PUT"), (RuntimeError,), "HTTP 401) for a PUT request"),
]


@pytest.mark.parametrize(("error", "bases", "fragment"), ERRORS, ids=lambda v: repr(v)[:40])
def test_error_shape_message_and_pickle(
    error: KittyAuthError, bases: tuple[type[BaseException], ...], fragment: str
) -> None:
    assert isinstance(error, KittyAuthError)
    for base in bases:
        assert isinstance(error, base)
    text = str(error)
    assert fragment in text
    assert "\n" not in text
    data = pickle.dumps(error)
    clone = pickle.loads(data)  # noqa: S301 - our own bytes
    assert type(clone) is type(error)
    assert str(clone) == text
    for rendered in (text, repr(error), repr(clone)):
        assert SESSION.access_token not in rendered
        assert SESSION.refresh_token not in rendered
    assert SESSION.refresh_token.encode() not in data
    assert SESSION.access_token.encode() not in data


def test_tree_matches_the_spec() -> None:
    assert issubclass(RefreshLockBusy, TransientRefreshError)
    for leaf in (
        ConfigError,
        CorruptSession,
        NotAuthenticated,
        ReloginRequired,
        RefreshRejected,
        RefreshReplay,
        RefreshProtocolError,
        TransientRefreshError,
        StoreWriteFailed,
        RequestNotReplayable,
    ):
        assert leaf.__mro__[1] is KittyAuthError
