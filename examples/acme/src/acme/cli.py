"""``acme``: the command line (typer)."""

from __future__ import annotations

import sys
from typing import Annotated

import httpx
import typer

from kitty_auth_refresh import KittyAuthError
from kitty_daemon_identity import KittyDaemonError
from kitty_orphan_sweep import KittySweepError

from .integration import api, doctor, save_login, sync_daemon, token_manager

TokenUrl = Annotated[str, typer.Option(envvar="ACME_TOKEN_URL", help="acme's token endpoint")]
ApiUrl = Annotated[str, typer.Option(envvar="ACME_API_URL", help="acme's API")]

app = typer.Typer(
    name="acme",
    help="acme keeps your notes in sync.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # a traceback with locals could show a token
)
auth = typer.Typer(help="Sign in, and check what acme knows about your login.")
app.add_typer(auth, name="auth")
auth.add_typer(doctor, name="doctor")


@auth.command()
def login(
    token_url: TokenUrl,
    username: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
) -> None:
    """Sign in with your acme account."""
    form = {"grant_type": "password", "username": username, "password": password}
    save_login(
        token_manager(token_url), httpx.post(token_url, data={**form, "client_id": "acme-cli"})
    )
    print("signed in")


@app.command()
def whoami(
    token_url: TokenUrl, api_url: Annotated[str, typer.Option(envvar="ACME_API_URL")]
) -> None:
    """Show who you are signed in as."""
    with api(token_manager(token_url)) as client:
        print(client.get(f"{api_url}/me").json()["user"])


@app.command()
def sync(item: Annotated[str | None, typer.Argument()] = None) -> None:
    """Start (or reuse) the sync daemon and push an item to it."""
    client = sync_daemon().client()
    answer = client.post("/api/push", {"item": item}) if item else client.get("/api/status")
    print(f"synced {answer.body['synced']}")


def main() -> None:
    try:
        app()
    except (KittyAuthError, KittyDaemonError, KittySweepError, httpx.HTTPError) as exc:
        print(f"acme: error: {exc}", file=sys.stderr)
        sys.exit(1)
