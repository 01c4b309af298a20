"""INT-05: many holders of one expired session refresh at once → exactly one network refresh.

Eight processes, each holding the expired session in memory, are released by one barrier file;
separately, two managers x 20 coroutines in one process. The strict server counts the network
refreshes; every participant must end on the one rotated material.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from _auth_fixtures import (
    CLIENT_ID,
    OAuthServer,
    assert_no_secret_in,
    assert_no_token_in_logs,
    assert_other_token,
    assert_same_token,
    login_to_home,
    material_fp,
    read_home,
    reaped,
    start_worker,
    tokens_of,
)
from _harness import wait_for_file
from kitty_auth_refresh import SessionStore, TokenEndpoint, TokenManager

pytestmark = pytest.mark.timeout(60)
PROCESSES = 8
WORKER_TIMEOUT_S = 40.0


def test_eight_processes_one_network_refresh(
    oauth: OAuthServer, kitty_home: Path, tmp_path: Path
) -> None:
    original = login_to_home(oauth, kitty_home, expired=True)
    go = tmp_path / "go"

    with reaped([]) as workers:
        for i in range(PROCESSES):
            workers.append(
                start_worker(
                    f"w{i}",
                    "transaction",
                    tmp_path,
                    home=kitty_home,
                    server=oauth,
                    args=["--ready", str(tmp_path / f"ready{i}"), "--wait", str(go)],
                )
            )
        for i in range(PROCESSES):  # every worker holds the expired session in memory...
            wait_for_file(tmp_path / f"ready{i}")
        go.touch()  # ...before any of them may start its transaction
        codes = [w.wait(WORKER_TIMEOUT_S) for w in workers]

    assert codes == [0] * PROCESSES
    results = [w.result() for w in workers]
    on_disk = read_home(kitty_home)
    assert on_disk is not None
    assert all(r["loaded"] == material_fp(original) for r in results)
    outcomes = Counter(r["outcome"] for r in results)
    assert outcomes["refreshed"] == 1, outcomes
    assert outcomes["adopted_newer"] + outcomes["lock_timeout_adopted"] == PROCESSES - 1, outcomes
    assert {r["material"] for r in results} == {material_fp(on_disk)}
    assert all(r["api_status"] == 200 for r in results)
    counters = oauth.counters()
    assert counters["refresh_ok"] == 1
    assert counters["refresh_requests"] == 1
    assert counters["reuse_detected"] == 0
    # The processes' own INFO lines (AUTH-26) tell the same story: one `refreshed`.
    logged = Counter(
        line.split("refresh outcome=", 1)[1].split()[0]
        for w in workers
        for line in w.log_path.read_text().splitlines()
        if "refresh outcome=" in line
    )
    assert logged == outcomes, (logged, outcomes)
    assert_no_token_in_logs(
        [w.log_path for w in workers],
        [
            original.access_token,
            original.refresh_token,
            on_disk.access_token,
            on_disk.refresh_token,
        ],
    )


async def test_two_managers_twenty_coroutines_one_network_refresh(
    oauth: OAuthServer, kitty_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    original = login_to_home(oauth, kitty_home, expired=True)
    store = SessionStore(kitty_home / "auth")
    endpoints = [TokenEndpoint(oauth.token_url, CLIENT_ID) for _ in range(2)]
    managers = [TokenManager(store, endpoint) for endpoint in endpoints]
    try:
        tokens = await asyncio.wait_for(
            asyncio.gather(*(m.get_access_token() for m in managers for _ in range(20))),
            timeout=40,
        )
    finally:
        for endpoint in endpoints:
            endpoint.close()

    on_disk = read_home(kitty_home)
    assert on_disk is not None
    for i, token in enumerate(tokens):
        assert_same_token(token, on_disk.access_token, f"coroutine {i}'s token")
    assert_other_token(on_disk.access_token, original.access_token, "rotated access token")
    assert all(material_fp(m.session) == material_fp(on_disk) for m in managers)
    counters = oauth.counters()
    assert counters["refresh_ok"] == 1
    assert counters["refresh_requests"] == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refresh ")]
    outcomes = Counter(line.split()[1] for line in lines)
    assert outcomes["outcome=refreshed"] == 1, lines
    assert outcomes["outcome=adopted_newer"] + outcomes["outcome=lock_timeout_adopted"] == 1, lines
    assert sum(outcomes.values()) == 2, lines  # one transaction per manager, not per coroutine
    assert_no_secret_in(caplog.text, tokens_of(original, on_disk), "the captured log")
