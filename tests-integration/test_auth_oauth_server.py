"""Self-test of the Authlib test server: rotation, reuse detection, counters and fault hooks.

The auth matrices are only as honest as this server is strict, so its behaviour is pinned here
over plain httpx, without kitty in the loop.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from _auth_fixtures import (
    OAuthServer,
    assert_other_token,
    oauth_server_argv,
    running_server,
    token_hash,
)
from _harness import wait_for

pytestmark = pytest.mark.timeout(60)


def test_login_returns_the_fields_the_client_needs(oauth: OAuthServer) -> None:
    token = oauth.login()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["refresh_token"] != ""
    assert token["session_id"].startswith("sess-")
    assert token["subject"] == "alice"
    status = oauth.me(token["access_token"])
    assert status == 200
    assert oauth.counters()["login_ok"] == 1


def test_refresh_rotates_and_keeps_the_session_id(oauth: OAuthServer) -> None:
    first = oauth.login()
    response = oauth.raw_refresh(first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert_other_token(second["refresh_token"], first["refresh_token"], "rotated refresh token")
    assert_other_token(second["access_token"], first["access_token"], "new access token")
    assert second["session_id"] == first["session_id"]
    assert second["expires_in"] == 300
    # The superseded access token stays valid until it expires; only the refresh token is spent.
    statuses = [oauth.me(first["access_token"]), oauth.me(second["access_token"])]
    assert statuses == [200, 200]
    counters = oauth.counters()
    assert counters["refresh_ok"] == 1
    assert counters["reuse_detected"] == 0


def test_reusing_a_rotated_token_revokes_the_whole_family(oauth: OAuthServer) -> None:
    first = oauth.login()
    second = oauth.raw_refresh(first["refresh_token"]).json()
    other = oauth.login()  # an unrelated session must survive

    reuse = oauth.raw_refresh(first["refresh_token"])

    assert reuse.status_code == 400
    assert reuse.json() == {"error": "invalid_grant"}
    # Every token of the family is dead: the rotated refresh token and both access tokens.
    after = oauth.raw_refresh(second["refresh_token"]).json()
    assert after == {"error": "invalid_grant"}
    statuses = [oauth.me(t["access_token"]) for t in (first, second, other)]
    assert statuses == [401, 401, 200]
    counters = oauth.counters()
    assert counters["reuse_detected"] == 1
    assert counters["family_revocations"] == 1
    assert counters["refresh_rejected"] == 2
    assert counters["refresh_ok"] == 1
    assert counters["api_rejected_revoked"] == 2


def test_unknown_refresh_token_is_invalid_grant_without_revocation(oauth: OAuthServer) -> None:
    token = oauth.login()
    response = oauth.raw_refresh("not-a-token")
    assert (response.status_code, response.json()) == (400, {"error": "invalid_grant"})
    status = oauth.me(token["access_token"])
    assert status == 200
    assert oauth.counters()["family_revocations"] == 0


def test_replay_mode_answers_409_and_revokes_nothing(oauth: OAuthServer) -> None:
    first = oauth.login()
    second = oauth.raw_refresh(first["refresh_token"]).json()
    oauth.fault(replay_mode=True, retry_after=2)

    replay = oauth.raw_refresh(first["refresh_token"])

    assert replay.status_code == 409
    assert replay.json()["error"] == "refresh_replay_benign_retry"
    assert replay.json()["retry_after"] == 2
    assert replay.headers["Retry-After"] == "2"
    current = oauth.raw_refresh(second["refresh_token"])
    assert current.status_code == 200
    counters = oauth.counters()
    assert counters["benign_replays"] == 1
    assert counters["family_revocations"] == 0
    assert counters["reuse_detected"] == 0


def test_503_burst_then_recovery_and_the_log_counts_presentations(oauth: OAuthServer) -> None:
    token = oauth.login()
    oauth.fault(fail_503=2)

    statuses = [oauth.raw_refresh(token["refresh_token"]).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    presented = oauth.presentations(token["refresh_token"])
    assert presented == 3
    assert [entry["status"] for entry in oauth.log()] == [503, 503, 200]
    hashed = token_hash(token["refresh_token"])
    assert [entry["rt"] == hashed for entry in oauth.log()] == [True] * 3
    # The login's access token (300 s) had most of its life left at every presentation.
    assert all(290 < entry["remaining_s"] <= 300 for entry in oauth.log())
    counters = oauth.counters()
    assert (counters["served_503"], counters["refresh_ok"]) == (2, 1)


def test_leak_check_counts_every_issued_token_found_in_a_file(
    oauth: OAuthServer, tmp_path: Path
) -> None:
    first = oauth.login()
    second = oauth.raw_refresh(first["refresh_token"]).json()
    leaky, clean = tmp_path / "leaky.log", tmp_path / "clean.log"
    # A rotated-away token counts as much as a live one: a log must hold neither.
    leaky.write_text(f"debug: Bearer {first['access_token']} then {second['refresh_token']}\n")
    clean.write_text("refresh outcome=refreshed held_s=0.01\n")

    found, issued = oauth.leaks([leaky, clean])

    assert found == {str(leaky): 2, str(clean): 0}
    assert issued == 4  # two access and two refresh tokens since the reset


def test_delay_with_drop_times_the_client_out_and_rotates_nothing(oauth: OAuthServer) -> None:
    token = oauth.login()
    oauth.fault(delay_s=1.0, delay_action="drop")

    with pytest.raises(httpx.ReadTimeout):
        oauth.client.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": token["refresh_token"],
                "client_id": "kitty-cli",
            },
            timeout=0.2,
        )
    wait_for(
        lambda: oauth.counters()["dropped_after_delay"] == 1, timeout=10, what="dropped request"
    )
    oauth.fault(delay_s=0.0)
    after = oauth.raw_refresh(token["refresh_token"])
    assert after.status_code == 200


def test_hold_parks_a_refresh_until_released(oauth: OAuthServer) -> None:
    token = oauth.login()
    oauth.fault(hold_next=1)
    statuses: list[int] = []
    thread = threading.Thread(
        target=lambda: statuses.append(oauth.raw_refresh(token["refresh_token"]).status_code)
    )
    thread.start()
    try:
        wait_for(lambda: oauth.counters()["held"] == 1, timeout=10, what="parked request")
        assert statuses == []
        assert oauth.counters()["refresh_ok"] == 0
    finally:
        oauth.release()
        thread.join(30)
    assert statuses == [200]


def test_admin_revocation_kills_the_family(oauth: OAuthServer) -> None:
    token = oauth.login()
    oauth.revoke(token["session_id"])
    refused = oauth.raw_refresh(token["refresh_token"]).json()
    assert refused == {"error": "invalid_grant"}
    status = oauth.me(token["access_token"])
    assert status == 401
    counters = oauth.counters()
    assert (counters["family_revocations"], counters["reuse_detected"]) == (1, 0)


def test_access_ttl_is_configurable_and_expiry_gives_401(oauth: OAuthServer) -> None:
    oauth.fault(access_ttl_s=1)
    token = oauth.login()
    assert token["expires_in"] == 1
    wait_for(lambda: oauth.me(token["access_token"]) == 401, timeout=10, what="expiry")
    assert oauth.counters()["api_rejected_expired"] >= 1


def test_unknown_fault_is_refused(oauth: OAuthServer) -> None:
    response = oauth.client.post("/admin/fault", json={"fail_504": 1})
    assert response.status_code == 400
    assert "fail_504" in response.json()["error_description"]


def test_server_refuses_a_non_loopback_bind() -> None:
    result = subprocess.run(
        oauth_server_argv("--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert b"invalid choice" in result.stderr


def test_server_exits_when_its_parent_closes_stdin(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        assert server.proc.stdin is not None
        server.proc.stdin.close()
        assert server.proc.wait(20) == 0
