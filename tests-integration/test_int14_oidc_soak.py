"""INT-14 soak against a second, independent provider: panva's oidc-provider (issue 14).

8 processes share one rotating session for ~28 s against a provider nobody here wrote, with
refresh-token rotation whose reuse revokes the whole grant, 3 s access tokens stamped in whole
seconds and zero clock tolerance: 3 long-lived sync daemons, 2 asyncio services (3 tasks each on
one `TokenManager`) and 3 CLI slots respawning short-lived processes, plus two bursts of 503s.

Pass: nobody is logged out (every worker's last userinfo call is 200), the provider never saw
reuse or revoked a grant, each refresh token was spent successfully at most once and only once
it was due (never a second refresh straight after the first: checked against the provider's own
record of when the presented pair was issued, with a control that shows the check bites), every
userinfo rejection is a token that expired in flight, and no token the provider issued appears
in any captured output.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _auth_fixtures import Worker, assert_no_token_in_logs, start_worker
from _harness import log_tail, reap, wait_for_file
from _oidc_provider import (
    ACCESS_TTL_S,
    PUBLIC_CLIENT,
    OidcProvider,
    login_to_home,
    running_provider,
)
from kitty_auth_refresh import SessionStore, SyncTokenManager, TokenEndpoint

pytestmark = pytest.mark.timeout(90)
RUN_S = 28.0  # a 3 s token is refreshed every 0.5-1 s: about 45 rotation windows
MIN_WINDOWS = 30
RUN_MAX_S = 45.0  # on a very slow machine the run goes on until MIN_WINDOWS, but no longer
DAEMONS = 3
ASYNC_SERVICES = 2
CLI_SLOTS = 3
BURST_AT_S = (8.0, 20.0)
BURST_SIZE = 2
DAEMON_INTERVAL_S = 0.2
SAMPLE_EVERY_S = 0.1  # how often the harness looks at the file; orders nothing
IN_FLIGHT_SLACK_S = 0.25
#: AUTH-29: the margin is at most 3/4 of the lifetime kitty sees (the provider's 3 s minus the
#: 1 s allowance), so a pair is refreshed no sooner than 1/4 of that lifetime after it was issued.
MIN_DUE_AGE_S = 0.25 * (ACCESS_TTL_S - 1) - IN_FLIGHT_SLACK_S


@pytest.fixture(scope="module")
def _provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_provider(tmp_path_factory.mktemp("oidc-soak")) as provider:
        yield provider


@pytest.fixture
def op(_provider: OidcProvider) -> OidcProvider:
    _provider.reset()
    return _provider


def test_soak_against_oidc_provider(op: OidcProvider, kitty_home: Path, tmp_path: Path) -> None:
    login_to_home(op, kitty_home)
    store = SessionStore(kitty_home / "auth")
    stop = tmp_path / "stop"
    long_lived: list[Worker] = []
    cli_running: dict[int, Worker] = {}
    cli_done: list[Worker] = []
    missing_samples = 0
    samples = 0
    spawned = 0

    def spawn_cli(slot: int) -> None:
        nonlocal spawned
        spawned += 1
        cli_running[slot] = start_worker(
            f"cli{slot}-{spawned}",
            "soak_cli",
            tmp_path,
            home=kitty_home,
            server=op,
            client_id=PUBLIC_CLIENT,
        )

    loop_args = [*("--stop", str(stop)), *("--interval", str(DAEMON_INTERVAL_S))]
    loop_args += ["--max-run", str(RUN_MAX_S + 30)]
    try:
        for i in range(DAEMONS + ASYNC_SERVICES):
            role = "soak_daemon" if i < DAEMONS else "soak_async"
            ready = ["--ready", str(tmp_path / f"long{i}.ready")]
            long_lived.append(
                start_worker(
                    f"{role}{i}",
                    role,
                    tmp_path,
                    home=kitty_home,
                    server=op,
                    client_id=PUBLIC_CLIENT,
                    args=[*ready, *loop_args],
                )
            )
        for i in range(DAEMONS + ASYNC_SERVICES):
            wait_for_file(tmp_path / f"long{i}.ready", timeout=30)
        for slot in range(CLI_SLOTS):
            spawn_cli(slot)
        bursts = list(BURST_AT_S)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < RUN_S or (
            elapsed < RUN_MAX_S and op.counters()["refresh_ok"] < MIN_WINDOWS
        ):
            for slot, worker in list(cli_running.items()):
                if worker.proc.poll() is not None:
                    cli_done.append(worker)
                    spawn_cli(slot)
            samples += 1
            if store.read() is None:
                missing_samples += 1
            if bursts and elapsed >= bursts[0]:
                bursts.pop(0)
                op.fault(fail_next=BURST_SIZE)
            time.sleep(SAMPLE_EVERY_S)
        stop.touch()
        for worker in long_lived:
            assert worker.wait(40) == 0, log_tail(worker.log_path)
        for worker in cli_running.values():
            assert worker.wait(40) == 0, log_tail(worker.log_path)
            cli_done.append(worker)
    finally:
        for worker in [*long_lived, *cli_done, *cli_running.values()]:
            reap(worker.proc)

    counters = op.counters()
    refreshes = op.log("refresh")
    assert missing_samples == 0, f"the session file was missing in {missing_samples} samples"
    assert store.read() is not None
    # No lost session, no reuse, no grant revoked by the provider's theft detection.
    assert counters["reuse_detected"] == 0, counters
    assert counters["grant_revocations"] == 0, counters
    assert counters["refresh_rejected"] == 0, counters
    # Enough rotation windows; every refresh that reached the provider succeeded (the bursts
    # were answered before it), and each refresh token succeeded at most once.
    assert counters["refresh_ok"] >= MIN_WINDOWS, counters
    assert counters["served_503"] == BURST_SIZE * len(BURST_AT_S), counters
    assert counters["refresh_requests"] == counters["refresh_ok"], counters
    by_token: dict[str, list[int]] = defaultdict(list)
    for entry in refreshes:
        by_token[entry["rt"]].append(entry["status"])
    assert all(statuses == [200] for statuses in by_token.values())
    # ... and only once due: no second refresh in a window.
    early = [e for e in refreshes if _early(e)]
    assert early == [], early[:5]
    logs = [w.log_path for w in [*long_lived, *cli_done]]
    refreshed_lines = sum(p.read_text().count("refresh outcome=refreshed ") for p in logs)
    assert refreshed_lines == counters["refresh_ok"]
    # Everybody's last call succeeded; no worker saw an error; rejections were in-flight expiry.
    cli_results = [w.result() for w in cli_done]
    assert len(cli_results) >= CLI_SLOTS
    assert [r for r in cli_results if "api_status" not in r] == []
    # Never a token that was already expired when it was asked for. (Measured right after the
    # call, a token handed over in its last moments can look expired on a loaded machine: the
    # process was descheduled after kitty checked it, which is what _unexplained allows for.)
    assert all(r["ttl_at_ask_s"] > 0 for r in cli_results)
    assert [r for r in cli_results if r["final_api_status"] != 200] == []
    cli_rejected = [r for r in cli_results if r["api_status"] != 200]
    long_results = [w.result() for w in long_lived]
    long_rejected = [x for r in long_results for x in r["rejections"]]
    for result in long_results:
        assert result["final_api_status"] == 200, result
        assert result["errors"] == [], result
        assert set(result["statuses"]) <= {"200", "401"}, result
        assert result["min_ttl_at_ask_s"] > 0, result
    unexplained = [r for r in [*cli_rejected, *long_rejected] if _unexplained(r)]
    assert unexplained == []
    rejected_calls = len(cli_rejected) + len(long_rejected)
    assert counters["api_rejected"] == counters["api_rejected_expired"] == rejected_calls
    leaks, issued = op.leaks([*logs, op.stderr_path])
    assert issued >= 2 * counters["refresh_ok"]  # the provider checked every token it issued
    assert {path: n for path, n in leaks.items() if n} == {}
    assert_no_token_in_logs(logs, _tokens(store))

    # Control: the early-refresh check does catch a second refresh straight after the first.
    with TokenEndpoint(op.token_url, PUBLIC_CLIENT) as endpoint:
        manager = SyncTokenManager(store, endpoint)
        for _ in range(2):
            forced = manager.refresh_if_needed(force=True)
            assert forced is not None
            assert forced.outcome.value == "refreshed"
    assert _early(op.log("refresh")[-1])
    youngest = min(e["age_s"] for e in refreshes)
    print(
        f"oidc soak: {spawned} CLI processes, {len(long_lived)} long-lived, "
        f"refresh_ok={counters['refresh_ok']}, 503s={counters['served_503']}, "
        f"userinfo ok={counters['api_ok']} rejected in flight={rejected_calls}, "
        f"youngest pair refreshed at {youngest:.2f}s (bound {MIN_DUE_AGE_S:.2f}s)",
        file=sys.stderr,
    )


def _tokens(store: SessionStore) -> list[str]:
    session = store.read()
    assert session is not None
    return [session.access_token, session.refresh_token]


def _early(entry: dict[str, Any]) -> bool:
    """A successful refresh of a pair issued too recently to be due."""
    return bool(entry["status"] == 200 and entry["age_s"] < MIN_DUE_AGE_S)


def _unexplained(rejection: dict[str, float]) -> bool:
    """A 401 kitty is to blame for: the call took less time than kitty said the token had left
    (kitty's expiry is never later than the provider's, so a token it calls valid is valid)."""
    return rejection["call_s"] < rejection["ttl_at_get_s"] - IN_FLIGHT_SLACK_S
