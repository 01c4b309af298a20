"""S3 / AUTH-21 / AUTH-33 live: a genuine revocation clears the session exactly once and tells
the user why and what to run — and concurrent holders do not turn it into several rejections.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _auth_fixtures import (
    CLIENT_ID,
    OAuthServer,
    assert_no_secret_in,
    assert_no_token_in_logs,
    login_to_home,
    reaped,
    session_file,
    start_worker,
    tokens_of,
)
from _harness import wait_for_file
from kitty_auth_refresh import (
    NotAuthenticated,
    ReloginRequired,
    SessionStore,
    SyncTokenManager,
    TokenEndpoint,
)

pytestmark = pytest.mark.timeout(60)
WORKER_TIMEOUT_S = 40.0
LOGIN_COMMAND = "kitty-demo login"  # what _auth_workers.py passes as login_command
INVALID_GRANT_MESSAGE = (
    "Your session has ended: the server rejected the refresh token (expired or revoked). "
    f"Run `{LOGIN_COMMAND}` to sign in again."
)


def test_genuine_revocation_clears_exactly_once_with_cause_and_command(
    oauth: OAuthServer, kitty_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    original = login_to_home(oauth, kitty_home)
    oauth.revoke(original.session_id)  # the server ends the family: a legitimate loss
    with TokenEndpoint(oauth.token_url, CLIENT_ID) as endpoint:
        manager = SyncTokenManager(
            SessionStore(kitty_home / "auth"), endpoint, login_command=LOGIN_COMMAND
        )
        manager.get_access_token()  # loads the (locally still valid) session

        with pytest.raises(ReloginRequired) as ended:
            manager.refresh_if_needed(force=True)  # e.g. the API answered 401
        with pytest.raises(NotAuthenticated):
            manager.get_access_token()  # nothing is resurrected from memory

    assert str(ended.value) == INVALID_GRANT_MESSAGE
    assert not session_file(kitty_home).exists()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refresh ")]
    assert len(lines) == 1, lines
    assert "outcome=current_rejection_cleared network_call=true" in lines[0]
    assert lines[0].endswith("cause=invalid_grant")
    counters = oauth.counters()
    assert counters["refresh_requests"] == 1
    assert counters["refresh_rejected"] == 1
    assert counters["family_revocations"] == 1
    assert_no_secret_in(caplog.text + str(ended.value), tokens_of(original), "log or message")


def test_concurrent_holders_cause_one_rejection_and_one_delete(
    oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(oauth, kitty_home)
    oauth.revoke(original.session_id)
    go = tmp_path / "go"

    with reaped([]) as workers:
        for i in range(3):
            workers.append(
                start_worker(
                    f"w{i}",
                    "manager",
                    tmp_path,
                    home=kitty_home,
                    server=oauth,
                    args=["--ready", str(tmp_path / f"ready{i}"), "--wait", str(go)],
                )
            )
        for i in range(3):
            wait_for_file(tmp_path / f"ready{i}")
        go.touch()
        assert [w.wait(WORKER_TIMEOUT_S) for w in workers] == [0, 0, 0]

    results = [w.result() for w in workers]
    assert all(r["error_type"] == "ReloginRequired" for r in results), results
    messages = sorted(r["error"] for r in results)
    assert messages.count(INVALID_GRANT_MESSAGE) == 1, messages
    assert all(
        "removed by another process (logout)" in m for m in messages if m != INVALID_GRANT_MESSAGE
    ), messages
    assert not session_file(kitty_home).exists()
    logs = "".join(w.log_path.read_text() for w in workers)
    assert logs.count("outcome=current_rejection_cleared network_call=true") == 1
    assert logs.count("cause=invalid_grant") == 1
    counters = oauth.counters()
    assert counters["refresh_requests"] == 1  # the others saw the emptied store: no network
    assert counters["refresh_rejected"] == 1
    assert_no_token_in_logs([w.log_path for w in workers], tokens_of(original))
