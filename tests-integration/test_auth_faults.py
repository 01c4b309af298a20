"""INT-11 (409 benign-replay mode) and INT-12 (503, server stopped, slow server) against the
real Authlib server: a sick server never logs anyone out and a spent token is never re-sent.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from _auth_fixtures import (
    CLIENT_ID,
    OAuthServer,
    assert_file_unchanged,
    assert_no_secret_in,
    assert_no_token_in_logs,
    assert_same_token,
    login_to_home,
    material_fp,
    read_home,
    reaped,
    running_server,
    session_file,
    session_from_token,
    start_worker,
    tokens_of,
)
from _harness import wait_for
from kitty_auth_refresh import (
    RefreshResult,
    SessionStore,
    SyncTokenManager,
    TokenEndpoint,
    run_refresh_transaction,
)
from kitty_filelock import probe

pytestmark = pytest.mark.timeout(60)
WORKER_TIMEOUT_S = 40.0
HOLD_SLACK_S = 0.5  # AUTH-24: every branch releases the lock by max_hold + 0.5 s


def _transaction(home: Path, token_url: str, *, max_hold: float = 10.0) -> RefreshResult:
    store = SessionStore(home / "auth")
    in_memory = store.read()
    assert in_memory is not None
    with TokenEndpoint(token_url, CLIENT_ID) as endpoint:
        return run_refresh_transaction(
            store, in_memory, endpoint, store.root / "refresh.lock", max_hold=max_hold
        )


def _bounded_transaction(home: Path, token_url: str, *, max_hold: float) -> RefreshResult:
    """A transaction whose hold must end within max_hold + 0.5 s (AUTH-24, INT-12).

    `held_s` is the library's own account, so it is cross-checked: it cannot exceed the wall
    time of the call around it, and afterwards the lock really is free.
    """
    started = time.monotonic()
    result = _transaction(home, token_url, max_hold=max_hold)
    wall_s = time.monotonic() - started
    assert 0 < result.held_s <= wall_s, (result.held_s, wall_s)
    assert result.held_s <= max_hold + HOLD_SLACK_S
    assert probe(home / "auth" / "refresh.lock").held is False
    return result


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("refresh outcome")]


# ---- INT-11: 409 refresh_replay_benign_retry ------------------------------------------------


def test_replay_after_a_lost_response_gives_up_without_resending(
    oauth: OAuthServer, kitty_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    original = login_to_home(oauth, kitty_home)
    # The server rotates R1 only after the client gave up waiting: the response is lost and the
    # file still holds R1, which the server now considers spent.
    oauth.fault(delay_s=1.5, delay_action="process", replay_mode=True, retry_after=0)
    lost = _transaction(kitty_home, oauth.token_url, max_hold=0.5)
    assert lost.outcome.value == "transient_error_preserved"
    wait_for(lambda: oauth.counters()["refresh_ok"] == 1, timeout=20, what="the lost rotation")
    oauth.fault(delay_s=0.0)
    before = session_file(kitty_home).read_bytes()

    result = _transaction(kitty_home, oauth.token_url)

    assert result.outcome.value == "lock_timeout_error"
    assert result.error_kind == "replay"
    assert result.network_call is True
    # The 409 was the one presentation of the spent token; it was not sent a third time.
    presented = oauth.presentations(original.refresh_token)
    assert presented == 2
    assert_file_unchanged(session_file(kitty_home), before, "session file")
    counters = oauth.counters()
    assert counters["benign_replays"] == 1
    assert counters["family_revocations"] == 0
    assert counters["reuse_detected"] == 0
    assert_no_secret_in(caplog.text, tokens_of(original), "the captured log")


def test_replay_retries_once_with_newer_persisted_material(
    oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(oauth, kitty_home)
    oauth.fault(hold_next=1, replay_mode=True, retry_after=1)

    with reaped([]) as workers:
        b = start_worker("B", "transaction", tmp_path, home=kitty_home, server=oauth)
        workers.append(b)
        try:
            wait_for(lambda: oauth.counters()["held"] == 1, timeout=20, what="B's request")
            # A non-locking writer rotates R1 -> R2 and replaces the file while B's R1 is parked.
            response = oauth.raw_refresh(original.refresh_token)
            assert response.status_code == 200
            newer = session_from_token(response.json())
            SessionStore(kitty_home / "auth").write(newer)
        finally:
            oauth.release()
        assert b.wait(WORKER_TIMEOUT_S) == 0

    rb = b.result()
    on_disk = read_home(kitty_home)
    assert on_disk is not None
    assert rb["outcome"] == "refreshed"
    assert rb["retry_after"] is None
    assert rb["material"] == material_fp(on_disk) not in (material_fp(original), material_fp(newer))
    assert rb["api_status"] == 200
    presented = [oauth.presentations(s.refresh_token) for s in (original, newer)]
    assert presented == [2, 1]  # writer + B's parked request; B's single retry
    counters = oauth.counters()
    assert counters["benign_replays"] == 1
    assert counters["family_revocations"] == 0
    assert counters["refresh_ok"] == 2
    assert_no_token_in_logs(
        [b.log_path],
        tokens_of(original, newer, on_disk),
    )


# ---- INT-12: transient errors ---------------------------------------------------------------


def test_503_preserves_the_session_and_the_valid_token_is_served(
    oauth: OAuthServer, kitty_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    # Inside the refresh margin but still valid: the manager will try to refresh.
    original = login_to_home(oauth, kitty_home, remaining_s=40)
    before = session_file(kitty_home).read_bytes()
    oauth.fault(fail_503=1)
    max_hold = 2.0

    result = _bounded_transaction(kitty_home, oauth.token_url, max_hold=max_hold)

    assert result.outcome.value == "transient_error_preserved"
    assert result.error_kind == "server_error"
    assert_file_unchanged(session_file(kitty_home), before, "session file")

    oauth.fault(fail_503=1)
    with TokenEndpoint(oauth.token_url, CLIENT_ID) as endpoint:
        manager = SyncTokenManager(SessionStore(kitty_home / "auth"), endpoint)
        token = manager.get_access_token()  # refresh attempted, 503, work while valid
    assert_same_token(token, original.access_token, "served during the 503")
    status = oauth.me(token)
    assert status == 200
    assert_file_unchanged(session_file(kitty_home), before, "session file")
    counters = oauth.counters()
    assert (counters["served_503"], counters["refresh_ok"]) == (2, 0)
    assert len(_lines(caplog)) == 2
    assert_no_secret_in(caplog.text, tokens_of(original), "the captured log")


def test_server_stopped_preserves_the_session(
    kitty_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    with running_server(tmp_path / "doomed") as doomed:
        original = login_to_home(doomed, kitty_home, remaining_s=40)
        token_url = doomed.token_url
    before = session_file(kitty_home).read_bytes()
    max_hold = 2.0

    result = _bounded_transaction(kitty_home, token_url, max_hold=max_hold)

    assert result.outcome.value == "transient_error_preserved"
    assert result.error_kind == "transport"
    assert_file_unchanged(session_file(kitty_home), before, "session file")
    with TokenEndpoint(token_url, CLIENT_ID) as endpoint:
        manager = SyncTokenManager(SessionStore(kitty_home / "auth"), endpoint)
        served = manager.get_access_token()
        assert_same_token(served, original.access_token, "served offline (still valid)")
    assert_file_unchanged(session_file(kitty_home), before, "session file")
    assert_no_secret_in(caplog.text, tokens_of(original), "the captured log")


def test_delay_beyond_max_hold_bounds_the_hold_and_preserves_the_session(
    oauth: OAuthServer, kitty_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    # Inside the refresh margin but still valid: the manager below will try to refresh too.
    original = login_to_home(oauth, kitty_home, remaining_s=40)
    before = session_file(kitty_home).read_bytes()
    oauth.fault(delay_s=3.0, delay_action="drop")
    max_hold = 1.0

    result = _bounded_transaction(kitty_home, oauth.token_url, max_hold=max_hold)

    assert result.outcome.value == "transient_error_preserved"
    assert result.error_kind == "timeout"
    # It did wait for the server (up to its deadline) rather than give up at once.
    assert result.held_s >= max_hold / 2
    assert_file_unchanged(session_file(kitty_home), before, "session file")
    # While the server stays slow, kitty keeps serving the still-valid access token.
    with TokenEndpoint(oauth.token_url, CLIENT_ID) as endpoint:
        manager = SyncTokenManager(SessionStore(kitty_home / "auth"), endpoint, max_hold=max_hold)
        served = manager.get_access_token()  # refresh attempted, timed out, work while valid
    assert_same_token(served, original.access_token, "served while the server is slow")
    status = oauth.me(served)
    assert status == 200
    assert_file_unchanged(session_file(kitty_home), before, "session file")
    wait_for(
        lambda: oauth.counters()["dropped_after_delay"] == 2, timeout=20, what="the slow requests"
    )
    # The server recovers: the very same session refreshes normally.
    oauth.fault(delay_s=0.0)
    recovered = _transaction(kitty_home, oauth.token_url)
    assert recovered.outcome.value == "refreshed"
    assert oauth.counters()["refresh_ok"] == 1
    assert_no_secret_in(caplog.text, tokens_of(original), "the captured log")
