"""A manager backing off after a 503 must not ride a superseded token to its last millisecond.

Found by the INT-07 soak: a long-lived worker whose refresh hit an injected 503 entered the
2 s backoff and, for the whole backoff, kept serving its old access token although another
process had already persisted newer material. The client computes expiry from receipt time,
which is later than the server's issue time, so the last calls with that token reach the server
after it expired there: 401, i.e. a protected call rejected for an expired token (INT-07 says:
none outside the paused worker). Backing off the NETWORK is right; skipping the (lock-free,
network-free) adoption of newer persisted material is not. Fixed in kitty-auth-refresh
4874d9e; this is its live regression test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _auth_fixtures import (
    CLIENT_ID,
    OAuthServer,
    assert_other_token,
    assert_same_token,
    login_to_home,
)
from kitty_auth_refresh import SessionStore, SyncTokenManager, TokenEndpoint

pytestmark = pytest.mark.timeout(60)


def test_manager_in_backoff_adopts_newer_persisted_material(
    oauth: OAuthServer, kitty_home: Path
) -> None:
    # 30 s left of a 300 s lifetime: inside the default 60 s margin, still valid.
    original = login_to_home(oauth, kitty_home, remaining_s=30)
    oauth.fault(fail_503=1)
    with (
        TokenEndpoint(oauth.token_url, CLIENT_ID) as daemon_endpoint,
        TokenEndpoint(oauth.token_url, CLIENT_ID) as other_endpoint,
    ):
        daemon = SyncTokenManager(SessionStore(kitty_home / "auth"), daemon_endpoint, jitter=0)
        # Refresh attempted, 503: the still-valid token is served and the daemon backs off.
        assert_same_token(daemon.get_access_token(), original.access_token, "served in backoff")
        assert oauth.counters()["served_503"] == 1

        # Another process (its own manager, same home) refreshes and persists newer material.
        other = SyncTokenManager(SessionStore(kitty_home / "auth"), other_endpoint, jitter=0)
        newer = other.get_access_token()
        assert_other_token(newer, original.access_token, "the other process's token")
        assert oauth.counters()["refresh_ok"] == 1

        # The daemon should now hand out the newer token (adopted from disk, no network) rather
        # than keep the superseded one until it expires.
        assert_same_token(daemon.get_access_token(), newer, "adopted by the daemon")
    assert oauth.counters()["refresh_requests"] == 2  # adopting needs no network call
