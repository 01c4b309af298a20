"""Everything acme writes to use the kitty packages (the rest of acme is its own business)."""

from __future__ import annotations

import sys

import httpx

from kitty_auth_refresh import (
    SessionStore,
    SyncTokenManager,
    TokenAuth,
    TokenEndpoint,
    session_from_token_response,
)
from kitty_daemon_identity import AppProfile, Family, PortRange
from kitty_doctor import doctor_app
from kitty_orphan_sweep import DaemonHandle, ensure_daemon

from . import __version__

ACME = AppProfile(
    "acme",
    families=(Family("sync", PortRange(18400, 18450), __version__),),
    login_command="acme auth login",
    doctor_command="acme auth doctor",
)
SYNC = ACME.family("sync")
doctor = doctor_app(ACME, version=__version__, packages={"acme-cli": __version__})


def token_manager(token_url: str) -> SyncTokenManager:
    endpoint = TokenEndpoint(token_url, "acme-cli")
    return SyncTokenManager(SessionStore(profile=ACME), endpoint, login_command="acme auth login")


def save_login(manager: SyncTokenManager, response: httpx.Response) -> None:
    manager.save_login(session_from_token_response(response))


def api(manager: SyncTokenManager) -> httpx.Client:
    return httpx.Client(auth=TokenAuth(manager))


def sync_daemon() -> DaemonHandle:
    return ensure_daemon([sys.executable, "-m", "acme.daemon"], family=SYNC)
