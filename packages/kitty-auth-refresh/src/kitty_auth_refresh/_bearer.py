"""``TokenAuth``: the token managers as an ``httpx.Auth`` (bearer header, one refresh on 401).

This is the only module that imports httpx at import time; the package loads it lazily (see
``__init__``) so that ``import kitty_auth_refresh`` stays cheap for read-only callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from typing import Final

import httpx

from ._errors import RequestNotReplayable
from ._manager import SyncTokenManager, TokenManager

HTTP_UNAUTHORIZED: Final = 401


class TokenAuth(httpx.Auth):
    """Authenticate httpx requests with the shared session's access token.

    ``httpx.Client(auth=TokenAuth(sync_manager))`` or ``httpx.AsyncClient(auth=TokenAuth(
    manager))`` (an ``AsyncClient`` also accepts a ``SyncTokenManager``, run in a worker
    thread). Each request carries ``Authorization: Bearer <token>`` from the manager, which
    refreshes ahead of expiry as usual. On a 401 the manager is told that token was refused:
    unless a concurrent request or another process already replaced it, it forces one refresh
    under the machine-wide lock; the request is then sent once more, and a second 401 is
    returned as it is. Many requests refused together cause one refresh.

    Bodies held in memory (``content=bytes``, ``data=``, ``json=``) are replayed. A streamed
    body (an iterator, a generator, a file) is never buffered: on a 401 the token is still
    refreshed, then ``RequestNotReplayable`` is raised. When the session has ended
    (``ReloginRequired``, ``NotAuthenticated``) or no new token can be had
    (``TransientRefreshError``, ``ClientConfigRejected``) the manager's error propagates.
    """

    def __init__(self, manager: TokenManager | SyncTokenManager) -> None:
        if not isinstance(manager, TokenManager | SyncTokenManager):
            raise TypeError(
                f"TokenAuth needs a TokenManager or SyncTokenManager, got {type(manager).__name__}"
            )
        self._manager = manager

    def __repr__(self) -> str:
        return f"TokenAuth({type(self._manager).__name__})"  # never a token

    __str__ = __repr__

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        manager = self._manager
        if not isinstance(manager, SyncTokenManager):
            raise TypeError(
                "TokenAuth over an async TokenManager serves httpx.AsyncClient; for httpx.Client "
                "build it on a SyncTokenManager"
            )
        token = manager.get_access_token()
        response = yield _with_bearer(request, token)
        if response.status_code != HTTP_UNAUTHORIZED:
            return
        token = manager.get_access_token(rejected=token)
        _require_replayable(request)
        yield _with_bearer(request, token)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._token(None)
        response = yield _with_bearer(request, token)
        if response.status_code != HTTP_UNAUTHORIZED:
            return
        token = await self._token(token)
        _require_replayable(request)
        yield _with_bearer(request, token)

    async def _token(self, rejected: str | None) -> str:
        manager = self._manager
        if isinstance(manager, TokenManager):
            return await manager.get_access_token(rejected=rejected)
        # A blocking manager must not block the event loop (it may wait for the refresh lock).
        return await asyncio.to_thread(manager.get_access_token, rejected)


def _with_bearer(request: httpx.Request, token: str) -> httpx.Request:
    # httpx masks the Authorization header in the repr of Headers, so this never reaches a log.
    request.headers["Authorization"] = f"Bearer {token}"
    return request


def _require_replayable(request: httpx.Request) -> None:
    """A body httpx holds in memory can be sent again; a streamed one was consumed by the
    first attempt. Buffering it up front would hold a whole upload in memory on every call."""
    try:
        request.content  # noqa: B018 - raises RequestNotRead for a streamed body
    except httpx.RequestNotRead:
        raise RequestNotReplayable(request.method, HTTP_UNAUTHORIZED) from None
