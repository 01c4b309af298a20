"""The test's side of the second, independent provider: panva's oidc-provider under node.

`running_provider()` starts `oidc_provider/provider.mjs` on an ephemeral loopback port (reaped on
exit, like the Authlib server in `_auth_fixtures.py`); `OidcProvider` wraps its admin routes and
the standard ones a test needs: a first login through the real authorization code flow (PKCE;
the provider's test-only interaction page approves "alice" at once), userinfo, introspection,
RFC 7009 revocation and a bare refresh. Node, npm and `npm ci` are prerequisites: without them
`require_node()` skips with the reason and the command to run.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import shutil
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx
import pytest

from _auth_fixtures import AdminServer, running_admin_server, token_hash
from _jws import CLIENT_KEY_ID, es256_jwt

if TYPE_CHECKING:
    from kitty_auth_refresh import Session

HERE: Final = Path(__file__).parent
PROVIDER_DIR: Final = HERE / "oidc_provider"
PROVIDER_SCRIPT: Final = PROVIDER_DIR / "provider.mjs"
# Shared with provider.mjs (the provider's side of the same fixture).
REDIRECT_URI: Final = "http://127.0.0.1/kitty-test-callback"
SCOPE: Final = "openid email profile offline_access"
PUBLIC_CLIENT: Final = "kitty-public"
BASIC_CLIENT: Final = "kitty-basic"
POST_CLIENT: Final = "kitty-post"
JWT_CLIENT: Final = "kitty-jwt"
SECRETS: Final = {BASIC_CLIENT: "basic:secret/+ 14", POST_CLIENT: "post-secret-14"}
AUTH_METHODS: Final = {
    PUBLIC_CLIENT: "none",
    BASIC_CLIENT: "client_secret_basic",
    POST_CLIENT: "client_secret_post",
    JWT_CLIENT: "private_key_jwt",
}
ACCESS_TTL_S: Final = 3
MAX_REDIRECTS: Final = 10


def form_encode(value: str) -> str:
    """RFC 6749 §2.3.1: each part of the Basic credentials is form-urlencoded first."""
    return urllib.parse.quote(value, safe="")


def require_node() -> None:
    """Skip (with the reason and the fix) unless node and the pinned provider are installed."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the oidc-provider matrix needs Node.js >= 20")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip(
            "oidc-provider is not installed: run `npm ci --prefix tests-integration/oidc_provider`"
            " (nox -s integration does)"
        )


@dataclass
class OidcProvider(AdminServer):
    """Handle on one `provider.mjs` subprocess (panva's oidc-provider)."""

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def api_url(self) -> str:
        """The protected resource of this provider: OpenID Connect userinfo."""
        return f"{self.issuer}/me"

    # ---- admin routes (provider.mjs, beyond AdminServer's) ----------------------------------

    def log(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e for e in super().log() if kind is None or e["kind"] == kind]

    def reset(self) -> None:
        self.client.post("/admin/reset").raise_for_status()

    def presentations(self, refresh_token: str) -> int:
        """How many refresh requests presented this token (from the provider's hashed log)."""
        wanted = token_hash(refresh_token)
        return sum(1 for entry in self.log("refresh") if entry["rt"] == wanted)

    # ---- the provider's standard endpoints --------------------------------------------------

    def client_auth(self, client_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """(form fields, headers) authenticating `client_id` the way it is registered, built
        here independently of kitty (`es256_jwt` signs the private_key_jwt assertion)."""
        method = AUTH_METHODS[client_id]
        if method == "client_secret_basic":
            pair = f"{form_encode(client_id)}:{form_encode(SECRETS[client_id])}"
            return {}, {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        if method == "client_secret_post":
            return {"client_id": client_id, "client_secret": SECRETS[client_id]}, {}
        if method == "private_key_jwt":
            now = int(time.time())
            claims = {
                "iss": client_id,
                "sub": client_id,
                "aud": self.token_url,
                "jti": secrets.token_urlsafe(16),
                "iat": now,
                "exp": now + 60,
            }
            assertion = es256_jwt(self.client_key, claims, CLIENT_KEY_ID)
            return {
                "client_id": client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            }, {}
        return {"client_id": client_id}, {}

    def login(self, client_id: str = PUBLIC_CLIENT) -> tuple[dict[str, Any], dt.datetime]:
        """The authorization code flow with PKCE, as a browser and a CLI would run it; returns
        the raw token response and the time the code exchange was sent."""
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        state = secrets.token_urlsafe(8)
        query = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "prompt": "consent",  # OIDC Core §11: offline_access needs it
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
        }
        with httpx.Client(base_url=self.issuer, trust_env=False, timeout=30.0) as browser:
            response = browser.get("/auth", params=query)
            for _ in range(MAX_REDIRECTS):
                location = response.headers.get("location", "")
                if location.startswith(REDIRECT_URI) or not response.is_redirect:
                    break
                response = browser.get(location)
        answer = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
        if answer.get("state") != state or "code" not in answer:
            raise AssertionError(f"the authorization flow ended without a code: {sorted(answer)}")
        form, headers = self.client_auth(client_id)
        sent = dt.datetime.now(dt.UTC)
        response = self.client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
                **form,
            },
            headers=headers,
        )
        response.raise_for_status()
        return dict(response.json()), sent

    def raw_refresh(self, refresh_token: str, client_id: str = PUBLIC_CLIENT) -> httpx.Response:
        """A bare RFC 6749 refresh request (what a naive client sends)."""
        form, headers = self.client_auth(client_id)
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
        return self.client.post("/token", data=data, headers=headers)

    def userinfo(self, access_token: str) -> int:
        headers = {"Authorization": f"Bearer {access_token}"}
        return self.client.get("/me", headers=headers).status_code

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 as the confidential basic client (introspection needs client auth)."""
        form, headers = self.client_auth(BASIC_CLIENT)
        response = self.client.post(
            "/token/introspection", data={"token": token, **form}, headers=headers
        )
        return dict(response.raise_for_status().json())

    def revoke(self, token: str, client_id: str = PUBLIC_CLIENT) -> None:
        """RFC 7009 revocation of `token` by the client it was issued to (a real provider
        revokes the whole grant with it)."""
        form, headers = self.client_auth(client_id)
        data = {"token": token, "token_type_hint": "refresh_token", **form}
        self.client.post("/token/revocation", data=data, headers=headers).raise_for_status()


def session_from_login(
    token: Mapping[str, Any], sent: dt.datetime, *, remaining_s: float | None = None
) -> Session:
    """A kitty Session for a token response, dated as kitty dates a refresh (send time minus the
    whole-second allowance). The app names the session: standard providers send no id for it.

    `remaining_s` backdates it so that only that many seconds of its lifetime are left."""
    from kitty_auth_refresh import Session

    lifetime = dt.timedelta(seconds=int(token["expires_in"]) - 1)
    issued = sent
    if remaining_s is not None:
        issued -= lifetime - dt.timedelta(seconds=remaining_s)
    return Session(
        session_id=f"login-{secrets.token_hex(6)}",
        access_token=token["access_token"],
        refresh_token=token["refresh_token"],
        access_expires_at=issued + lifetime,
        issued_at=issued,
        scope=token.get("scope"),
        token_type=token.get("token_type", "Bearer"),
        id_token=token.get("id_token"),
    )


def login_to_home(
    provider: OidcProvider,
    home: Path,
    client_id: str = PUBLIC_CLIENT,
    *,
    remaining_s: float | None = None,
) -> Session:
    """Log in as `client_id` and persist the session under `home`, as a CLI login would."""
    from kitty_auth_refresh import SessionStore

    token, sent = provider.login(client_id)
    session = session_from_login(token, sent, remaining_s=remaining_s)
    SessionStore(home / "auth").write(session)
    return session


@contextmanager
def running_provider(workdir: Path, *, access_ttl: int = ACCESS_TTL_S) -> Iterator[OidcProvider]:
    """Start provider.mjs on an ephemeral loopback port, with all four clients; always reaped."""
    require_node()
    argv = ["node", str(PROVIDER_SCRIPT), "--port", "0", "--access-ttl", str(access_ttl)]
    with running_admin_server(
        OidcProvider, argv, workdir, name="oidc-provider", cwd=PROVIDER_DIR
    ) as provider:
        yield provider
