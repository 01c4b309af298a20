"""TokenAuth: real httpx clients against a real loopback OAuth server and API (issue 13.4).

The bearer comes from the manager; a 401 forces at most one refresh through the locked
transaction and one retry; N requests refused together cause one refresh; a rotation by another
process is adopted, never answered with a spent refresh token; no token reaches a log or a repr.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from _authkit import ApiServer, FakeClock, make_session
from kitty_auth_refresh import (
    NotAuthenticated,
    ReloginRequired,
    RequestNotReplayable,
    Session,
    SessionStore,
    SyncTokenManager,
    TokenAuth,
    TokenEndpoint,
    TokenManager,
    TransientRefreshError,
)
from kitty_auth_refresh._session import utc_now

pytestmark = pytest.mark.timeout(60)
HANG_CAP_S = 30.0  # a child process that hangs must die; orders nothing
# "Another process": a second CLI that forces one refresh of the shared session.
OTHER_PROCESS = """
import sys
from kitty_auth_refresh import SessionStore, SyncTokenManager, TokenEndpoint
with TokenEndpoint(sys.argv[2], "kitty-cli") as endpoint:
    result = SyncTokenManager(SessionStore(sys.argv[1]), endpoint).refresh_if_needed(force=True)
assert result is not None and result.outcome == "refreshed", result
"""


@pytest.fixture
def endpoint(api: ApiServer) -> Iterator[TokenEndpoint]:
    with TokenEndpoint(api.token_url, "kitty-cli") as endpoint:
        yield endpoint


def login(store: SessionStore, api: ApiServer, *, accepted: bool = True) -> Session:
    """A stored session (real clock); ``accepted=False``: the API already refuses its token."""
    session = make_session(now=utc_now())
    if accepted:
        api.accepted.add(session.access_token)
    store.write(session)
    return session


def client(api: ApiServer, auth: TokenAuth) -> httpx.Client:
    return httpx.Client(base_url=api.url, auth=auth, trust_env=False, timeout=HANG_CAP_S)


def async_client(api: ApiServer, auth: TokenAuth) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.url, auth=auth, trust_env=False, timeout=HANG_CAP_S)


def tokens_sent(api: ApiServer) -> list[str]:
    return [token for token, _ in api.calls]


# ---- sync ------------------------------------------------------------------------------------


def test_bearer_from_the_manager_is_attached_and_nothing_refreshes(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    session = login(store, api)
    with client(api, TokenAuth(SyncTokenManager(store, endpoint))) as http:
        assert http.get("/api/me").status_code == 200
        assert http.get("/api/me").status_code == 200
    assert tokens_sent(api) == [session.access_token] * 2
    assert api.refreshes == []


def test_401_forces_one_refresh_and_one_retry_with_the_new_token(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    session = login(store, api, accepted=False)  # the server no longer takes this token
    with client(api, TokenAuth(SyncTokenManager(store, endpoint))) as http:
        response = http.get("/api/me")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert api.refreshes == [session.refresh_token]
    rotated = store.read()
    assert rotated is not None
    assert tokens_sent(api) == [session.access_token, rotated.access_token]


def test_a_second_401_is_returned_as_is_after_one_refresh(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    login(store, api)
    api.reject_all = True
    with client(api, TokenAuth(SyncTokenManager(store, endpoint))) as http:
        response = http.get("/api/me")
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token"}
    assert len(api.refreshes) == 1
    assert len(api.calls) == 2


def test_an_in_memory_body_is_sent_again_on_the_retry(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    login(store, api, accepted=False)
    with client(api, TokenAuth(SyncTokenManager(store, endpoint))) as http:
        response = http.post("/api/items", json={"name": "x" * 1000})
    assert response.status_code == 200
    [(_, first), (_, second)] = api.calls
    assert first == second
    assert len(first) > 1000


def test_a_streamed_body_is_not_resent_but_the_token_is_refreshed(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    login(store, api, accepted=False)

    def upload() -> Iterator[bytes]:
        yield b"chunk-1;"
        yield b"chunk-2"

    manager = SyncTokenManager(store, endpoint)
    with client(api, TokenAuth(manager)) as http:
        with pytest.raises(RequestNotReplayable) as info:
            http.put("/api/upload", content=upload())
        assert "send the request again" in str(info.value)
        assert (info.value.method, info.value.status) == ("PUT", 401)
        assert api.calls[0][1] == b"chunk-1;chunk-2"
        assert len(api.calls) == 1  # never re-sent with a half-consumed stream
        assert len(api.refreshes) == 1
        assert http.put("/api/upload", content=upload()).status_code == 200  # new token works


def test_another_process_rotating_meanwhile_is_adopted_without_a_second_refresh(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    session = login(store, api, accepted=False)

    def other_process_rotates(token: str) -> None:
        if token == session.access_token and not api.refreshes:
            subprocess.run(
                [sys.executable, "-c", OTHER_PROCESS, str(store.root), api.token_url],
                check=True,
                timeout=HANG_CAP_S,
                capture_output=True,
            )

    api.on_api = other_process_rotates
    with client(api, TokenAuth(SyncTokenManager(store, endpoint))) as http:
        response = http.get("/api/me")
    assert response.status_code == 200
    # Only the other process refreshed; our retry used what it persisted. Presenting the
    # spent refresh token again is what gets a whole family revoked by a strict server.
    assert api.refreshes == [session.refresh_token]
    rotated = store.read()
    assert rotated is not None
    assert tokens_sent(api) == [session.access_token, rotated.access_token]


def test_a_session_that_ended_propagates_relogin_required_without_looping(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    login(store, api, accepted=False)
    api.token_answer = (400, {"error": "invalid_grant"})
    auth = TokenAuth(SyncTokenManager(store, endpoint, login_command="acme login"))
    with client(api, auth) as http:
        with pytest.raises(ReloginRequired, match="Run `acme login`"):
            http.get("/api/me")
        assert (len(api.calls), len(api.refreshes)) == (1, 1)
        assert store.read() is None  # compare-then-clear: it held exactly the rejected material
        with pytest.raises(NotAuthenticated):
            http.get("/api/me")
    assert len(api.calls) == 1


def test_a_failing_token_endpoint_raises_and_backs_off_per_window_not_per_401(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint, fake_clock: FakeClock
) -> None:
    store.write(make_session())  # fake clock: the backoff window never ends in this test
    api.token_answer = (503, {"error": "temporarily_unavailable"})
    manager = SyncTokenManager(store, endpoint, clock=fake_clock.clock())
    with client(api, TokenAuth(manager)) as http:
        for _ in range(3):
            with pytest.raises(TransientRefreshError):
                http.get("/api/me")
        assert len(api.refreshes) == 1
        assert len(api.calls) == 3  # each refused once, none retried with the refused token
        # Still inside the backoff, a peer logs in again: its session is adopted on the 401.
        peer = make_session(session_id="sess-peer", ttl_s=7200)
        api.accepted.add(peer.access_token)
        store.write(peer)
        assert http.get("/api/me").status_code == 200
    assert tokens_sent(api)[-1] == peer.access_token
    assert len(api.refreshes) == 1


def test_threads_refused_together_on_one_client_cause_one_refresh(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    threads_n = 4
    session = login(store, api, accepted=False)
    api.gate_401s(threads_n)
    statuses: list[int] = []
    with client(api, TokenAuth(SyncTokenManager(store, endpoint))) as http:

        def call() -> None:
            statuses.append(http.get("/api/me").status_code)

        threads = [threading.Thread(target=call) for _ in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HANG_CAP_S)
    assert statuses == [200] * threads_n
    assert api.refreshes == [session.refresh_token]


def test_sync_flow_needs_a_sync_manager(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    login(store, api)
    http = client(api, TokenAuth(TokenManager(store, endpoint)))
    with http, pytest.raises(TypeError, match="SyncTokenManager"):
        http.get("/api/me")
    with pytest.raises(TypeError, match="TokenManager or SyncTokenManager"):
        TokenAuth(endpoint)  # type: ignore[arg-type]  # the mistake under test
    assert api.calls == []


# ---- async -----------------------------------------------------------------------------------


def test_async_requests_refused_together_cause_one_refresh(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    requests_n = 8
    session = login(store, api, accepted=False)
    api.gate_401s(requests_n)  # all N are refused before any refresh can happen

    async def main() -> list[httpx.Response]:
        async with async_client(api, TokenAuth(TokenManager(store, endpoint))) as http:
            return await asyncio.gather(*(http.get("/api/me") for _ in range(requests_n)))

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * requests_n
    assert api.refreshes == [session.refresh_token]
    rotated = store.read()
    assert rotated is not None
    assert sorted(tokens_sent(api)) == sorted(
        [session.access_token] * requests_n + [rotated.access_token] * requests_n
    )


def test_async_retry_replays_the_body_and_a_second_401_is_returned(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    login(store, api, accepted=False)

    async def main() -> tuple[int, int]:
        async with async_client(api, TokenAuth(TokenManager(store, endpoint))) as http:
            first = await http.post("/api/items", content=b"payload")
            api.reject_all = True
            second = await http.post("/api/items", content=b"payload")
            return first.status_code, second.status_code

    assert asyncio.run(main()) == (200, 401)
    assert [body for _, body in api.calls] == [b"payload"] * 4
    assert len(api.refreshes) == 2  # one per refused request, never more


def test_async_streamed_body_raises_after_refreshing(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    login(store, api, accepted=False)

    async def upload() -> AsyncIterator[bytes]:
        yield b"streamed"

    async def main() -> None:
        async with async_client(api, TokenAuth(TokenManager(store, endpoint))) as http:
            with pytest.raises(RequestNotReplayable):
                await http.post("/api/upload", content=upload())

    asyncio.run(main())
    assert (len(api.calls), len(api.refreshes)) == (1, 1)


def test_async_client_over_a_sync_manager(
    store: SessionStore, api: ApiServer, endpoint: TokenEndpoint
) -> None:
    session = login(store, api, accepted=False)

    async def main() -> list[int]:
        async with async_client(api, TokenAuth(SyncTokenManager(store, endpoint))) as http:
            return [(await http.get("/api/me")).status_code for _ in range(2)]

    assert asyncio.run(main()) == [200, 200]
    assert api.refreshes == [session.refresh_token]  # the second call used the new token
    assert len(api.calls) == 3


# ---- secrets ---------------------------------------------------------------------------------


def test_no_token_in_any_log_or_in_repr(
    store: SessionStore,
    api: ApiServer,
    endpoint: TokenEndpoint,
    caplog: pytest.LogCaptureFixture,
    tmp_path: pathlib.Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, asyncio
    session = login(store, api, accepted=False)
    sync_auth = TokenAuth(SyncTokenManager(store, endpoint))
    async_auth = TokenAuth(TokenManager(store, endpoint))
    with client(api, sync_auth) as http:
        assert http.get("/api/me").status_code == 200
        api.reject_all = True
        refused = http.get("/api/me")
        shown = [repr(refused.request), repr(refused.request.headers), repr(http.auth)]

    async def main() -> None:
        async with async_client(api, async_auth) as http:
            await http.get("/api/me")

    asyncio.run(main())
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # DEBUG really captured
    secrets = [session.access_token, session.refresh_token, *api.issued]
    assert len(secrets) == 8
    texts = [
        caplog.text,
        *(str(r.args) for r in caplog.records),
        repr(sync_auth),
        str(sync_auth),
        repr(async_auth),
        *shown,
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert repr(sync_auth) == "TokenAuth(SyncTokenManager)"
