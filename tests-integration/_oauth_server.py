"""A strict, rotating OAuth2 authorization server for the integration matrices (Authlib + Flask).

Run it as a subprocess: ``python _child.py oauth-server --port 0 [--access-ttl 300]
[--client-jwks F]`` (`_auth_fixtures.running_server`). It binds loopback only, prints one JSON
line ``{"port": N}`` on stdout once it accepts connections, and exits when its stdin reaches EOF
(so a crashed test run never leaves it behind) or on SIGTERM.

It is built from Authlib's real grant classes — ``ResourceOwnerPasswordCredentialsGrant`` to log
in and ``RefreshTokenGrant`` with ``INCLUDE_NEW_REFRESH_TOKEN`` (rotation) — customised only
through their documented hooks (``authenticate_user``, ``authenticate_refresh_token``,
``revoke_old_credential``, ``save_token``, the ``after_create_token_response`` hook) and Authlib's
``ResourceProtector`` with a ``BearerTokenValidator`` for ``GET /api/me``.

Strictness (what makes the incident reproducible): every refresh rotates the refresh token, and
presenting an already-rotated refresh token is treated as theft — the WHOLE family (every refresh
and access token descended from that login) is revoked and ``reuse_detected`` counts it. In
``replay_mode`` the same presentation is answered ``409 refresh_replay_benign_retry`` instead.

Like a real provider it stamps ``iat`` in whole seconds (a token issued at 10.9 s expires at
10 + ttl), answers every token response with an ES256 ``id_token`` (``sub``, ``email``, ``name``),
and knows four clients: the public ``kitty-cli`` (``none``), ``kitty-confidential``
(``client_secret_basic`` / ``client_secret_post``) and, when ``--client-jwks`` names the public
JWKS of a key the test holds, ``kitty-jwt`` (``private_key_jwt``, RFC 7523). Unknown clients and
bad credentials get 401 ``invalid_client``.

Endpoints (admin ones refuse non-loopback peers):
  GET  /.well-known/openid-configuration   discovery for the issuer ``http://127.0.0.1:<port>``
  GET  /.well-known/oauth-authorization-server/tenant   RFC 8414 metadata for the issuer
                            ``.../tenant``, which has NO openid-configuration (the fallback)
  POST /oauth/token         RFC 6749 token endpoint (password and refresh_token grants); the
                            response carries ``expires_in``, ``refresh_token``, ``id_token``,
                            ``session_id`` (the family id), ``subject``, ``email``
  POST /oauth/revoke        RFC 7009 revocation: revoking a token revokes its whole family
  GET  /api/me              protected resource: 200 ``{"sub", "session_id"}``; 401 when the access
                            token is unknown, expired or revoked
  GET  /admin/counters      counters (see ``COUNTER_NAMES``)
  GET  /admin/log           every refresh request: ``{"seq", "rt", "status", "error", "family",
                            "remaining_s"}`` where ``rt`` is the first 16 hex of sha256(refresh
                            token), ``family`` the session the presented token belongs to and
                            ``remaining_s`` how long the access token issued with it had left
                            when the request was answered — tests can prove a spent token is never
                            re-sent, and that a refresh happened only when due, without the token
                            ever being logged
  POST /admin/leaks         ``{"paths": [...]}`` → ``{"leaks": {path: n}}``: how many of the tokens
                            issued since the last reset appear in each file (the leak check covers
                            every token, not just those a test happened to see, and no token ever
                            leaves this process)
  POST /admin/fault         JSON merged into the fault settings (see ``Faults``)
  POST /admin/release       let requests parked by ``hold_next`` continue
  POST /admin/revoke        ``{"session_id": ...}`` revoke that family (a genuine revocation)
  POST /admin/reset         forget every token, counter, log entry and fault

No token value is ever printed or logged: werkzeug's request log is silenced and the request log
stores hashes only.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final, cast

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from _jws import es256_jwt

LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1")
CLIENT_ID: Final = "kitty-cli"
#: A confidential client (issue 14): authenticates with client_secret_basic or client_secret_post.
CONFIDENTIAL_CLIENT_ID: Final = "kitty-confidential"
CONFIDENTIAL_SECRET: Final = "conf:secret/+ 14"
#: A private_key_jwt client (RFC 7523), registered when the test passes its public JWKS.
JWT_CLIENT_ID: Final = "kitty-jwt"
USERNAME: Final = "alice"
PASSWORD: Final = "wonderland"
EMAIL: Final = "alice@example.com"
NAME: Final = "Alice Liddell"  # only in the id_token: proves a client read it from there
SCOPE: Final = "openid offline_access"
TENANT_PATH: Final = "/tenant"  # an issuer with a path, described by RFC 8414 metadata only
AUTH_METHODS: Final = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
ID_TOKEN_TTL_S: Final = 3600
ID_TOKEN_KEY_ID: Final = "authlib-test"
# A parked request never waits forever: a test that forgets /admin/release must not hang the server.
HOLD_MAX_S: Final = 30.0
COUNTER_NAMES: Final = (
    "login_ok",
    "refresh_requests",
    "refresh_ok",
    "refresh_rejected",
    "reuse_detected",
    "benign_replays",
    "family_revocations",
    "revocations",
    "served_503",
    "delayed",
    "dropped_after_delay",
    "held",
    "api_ok",
    "api_rejected",
    "api_rejected_expired",
    "api_rejected_revoked",
    "api_rejected_unknown",
)


def token_hash(token: str) -> str:
    """What the request log stores instead of a token (first 16 hex of its sha256)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass
class Faults:
    """Fault hooks, changed at run time through POST /admin/fault."""

    fail_503: int = 0  # the next N refresh requests get 503 before touching the store
    delay_s: float = 0.0  # every refresh request waits this long before it is processed
    # After the delay: "process" rotates as usual (the client may have given up: a lost response);
    # "drop" answers 503 without touching the store, like a server that died mid-request.
    delay_action: str = "process"
    hold_next: int = 0  # park the next N refresh requests until POST /admin/release
    replay_mode: bool = False  # rotated token presented -> 409 benign retry instead of revocation
    retry_after: int = 0  # seconds announced in the 409 body
    access_ttl_s: int = 300  # expires_in of newly issued access tokens


@dataclass
class Family:
    """One login and everything rotated from it; its id is the client's ``session_id``."""

    family_id: str
    user: str
    revoked: bool = False


@dataclass
class TokenRecord(TokenMixin):
    access_token: str
    refresh_token: str | None
    family: Family
    client_id: str
    scope: str
    issued_at: int  # whole seconds, like every provider's iat
    expires_in: int
    rotated: bool = False  # its refresh token was spent by a successful rotation

    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.family.revoked


@dataclass(frozen=True)
class Client(ClientMixin):
    """The public CLI client (no secret, auth method ``none``); with ``secret`` set the
    confidential client (``client_secret_basic`` / ``client_secret_post``); with ``jwks`` set
    the private_key_jwt client."""

    client_id: str = CLIENT_ID
    secret: str | None = None
    jwks: dict[str, Any] | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        # No redirect-based grant is registered, so Authlib never asks; were it to, it treats an
        # empty default exactly like a missing one (invalid_request).
        return ""

    def get_allowed_scope(self, scope: Collection[str] | str | None) -> str:
        # Authlib passes the request's raw ``scope`` (a str, or None when absent); the stub also
        # admits a collection of scope names, which is accepted as-is.
        if not scope:
            return SCOPE
        requested = scope.split() if isinstance(scope, str) else scope
        allowed = set(SCOPE.split())
        return " ".join(s for s in requested if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret is None:
            return False
        return hmac.compare_digest(client_secret.encode(), self.secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.jwks is not None:
            return method == "private_key_jwt"
        if self.secret is None:
            return method == "none"
        return method in {"client_secret_basic", "client_secret_post"}

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in {"password", "refresh_token"}


@dataclass
class State:
    """The in-memory store. ``lock`` makes each token request atomic (rotation is check-and-set)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    by_access: dict[str, TokenRecord] = field(default_factory=dict)
    by_refresh: dict[str, TokenRecord] = field(default_factory=dict)
    families: dict[str, Family] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    log: list[dict[str, Any]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    release: threading.Event = field(default_factory=threading.Event)
    assertion_ids: set[str] = field(default_factory=set)  # client assertion jti seen (replay)

    def revoke_family(self, family: Family) -> None:
        # Revoking the family object revokes every access and refresh token that points at it.
        if not family.revoked:
            family.revoked = True
            self.counters["family_revocations"] += 1


STATE = State()


class BenignReplay(OAuth2Error):
    """409: this refresh token was just rotated; retry with the newer one you should now hold."""

    error = "refresh_replay_benign_retry"
    status_code = 409

    def __init__(self, retry_after: int) -> None:
        super().__init__(description="refresh token already rotated; retry with the newest one")
        self.retry_after = retry_after

    # types-authlib narrows the body to the three RFC 6749 names, yet Authlib's runtime get_body
    # is any list of (name, value) pairs turned into the JSON body (OAuth2Error adds "state").
    def get_body(self) -> list[tuple[str, Any]]:  # type: ignore[override]  # stub narrower than runtime
        body: list[tuple[str, Any]] = [*super().get_body()]
        body.append(("retry_after", self.retry_after))
        return body

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        headers.append(("Retry-After", str(self.retry_after)))
        return headers


class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):
    # Authlib's own per-grant setting; the client's check_endpoint_auth_method narrows it.
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_user(self, username: str, password: str) -> str | None:
        ok_user = hmac.compare_digest(username.encode(), USERNAME.encode())
        ok_pw = hmac.compare_digest(password.encode(), PASSWORD.encode())
        return USERNAME if ok_user and ok_pw else None


class RotatingRefreshGrant(grants.RefreshTokenGrant):
    # Authlib's own per-grant setting; the client's check_endpoint_auth_method narrows it.
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh issues a new refresh token

    # Authlib's documented hook contract: return the token, or None for an unknown/revoked one
    # (Authlib then answers invalid_grant); types-authlib's "-> TokenMixin" omits the None.
    def authenticate_refresh_token(  # type: ignore[override]  # stub omits the documented None
        self, refresh_token: str
    ) -> TokenRecord | None:
        record = STATE.by_refresh.get(refresh_token)
        if record is None or record.family.revoked:
            return None  # Authlib answers invalid_grant
        if record.rotated:
            if STATE.faults.replay_mode:
                STATE.counters["benign_replays"] += 1
                raise BenignReplay(STATE.faults.retry_after)
            # Reuse of a spent refresh token: assume theft and kill the whole family.
            STATE.counters["reuse_detected"] += 1
            STATE.revoke_family(record.family)
            return None
        return record

    def authenticate_user(self, refresh_token: TokenRecord) -> str:
        return refresh_token.family.user

    def revoke_old_credential(self, refresh_token: TokenMixin) -> None:
        # Authlib hands back what authenticate_refresh_token returned.
        assert isinstance(refresh_token, TokenRecord), type(refresh_token)
        # The old access token stays valid until it expires (RFC 6749 §6 leaves this open);
        # only the spent refresh token is retired.
        refresh_token.rotated = True


def save_token(token: dict[str, Any], oauth_request: Any) -> None:
    """Authlib's save_token hook: store the pair in the family of the token it replaces."""
    old: TokenRecord | None = oauth_request.refresh_token
    if old is not None:
        family = old.family
    else:
        family = Family(family_id=f"sess-{secrets.token_hex(6)}", user=oauth_request.user)
        STATE.families[family.family_id] = family
    record = TokenRecord(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token"),
        family=family,
        client_id=oauth_request.client.client_id,
        scope=token.get("scope", SCOPE),
        # iat in whole seconds: the token expires up to 1 s before "issue time + expires_in".
        issued_at=int(time.time()),
        expires_in=int(token["expires_in"]),
    )
    STATE.by_access[record.access_token] = record
    if record.refresh_token:
        STATE.by_refresh[record.refresh_token] = record


def describe_session(grant: Any, result: tuple[int, dict[str, Any], Any]) -> None:
    """after_create_token_response hook: tell the client which session (family) it holds."""
    _status, token, _headers = result
    record = STATE.by_access[token["access_token"]]
    token["session_id"] = record.family.family_id
    token["subject"] = record.family.user
    token["email"] = EMAIL
    claims = {
        "iss": SERVER.issuer,
        "sub": record.family.user,
        "aud": record.client_id,
        "email": EMAIL,
        "name": NAME,
        "iat": record.issued_at,
        "exp": record.issued_at + ID_TOKEN_TTL_S,
    }
    token["id_token"] = es256_jwt(SERVER.id_token_key, claims, ID_TOKEN_KEY_ID)


def session_extension(grant: Any) -> None:
    grant.register_hook("after_create_token_response", describe_session)


@dataclass
class ServerFacts:
    """What the process knows once it is bound: its issuer, the key that signs its id_tokens,
    and the public JWKS of the private_key_jwt client (if the test registered one)."""

    issuer: str = ""
    id_token_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    client_jwks: dict[str, Any] | None = None


SERVER = ServerFacts()


class PrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 client authentication, through Authlib's own verifier (signature, iss = sub,
    aud, exp); the hooks only say which audiences we are and which jti were used."""

    # Authlib's documented way to name the method; types-authlib marks the base value Final.
    CLIENT_AUTH_METHOD = "private_key_jwt"  # type: ignore[misc]  # stub stricter than runtime

    def get_audiences(self) -> list[str]:
        return [f"{SERVER.issuer}/oauth/token", SERVER.issuer]

    def validate_jti(self, claims: Any, jti: str) -> bool:
        # Called inside a token or revocation request, which already holds STATE.lock.
        if jti in STATE.assertion_ids:
            return False  # a replayed assertion
        STATE.assertion_ids.add(jti)
        return True

    def resolve_client_public_key(self, client: Client) -> dict[str, Any]:
        assert client.jwks is not None  # only kitty-jwt authenticates this way
        return client.jwks


class FamilyRevocation(RevocationEndpoint):
    """RFC 7009: a revoked refresh (or access) token takes its whole family with it."""

    CLIENT_AUTH_METHODS = AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRecord | None:
        return STATE.by_refresh.get(token_string) or STATE.by_access.get(token_string)

    def revoke_token(self, token: TokenRecord, request: Any) -> None:
        STATE.counters["revocations"] += 1
        STATE.revoke_family(token.family)


def metadata(issuer: str) -> dict[str, Any]:
    """Discovery metadata (OpenID Connect Discovery / RFC 8414) naming this server's endpoints."""
    return {
        "issuer": issuer,
        "token_endpoint": f"{SERVER.issuer}/oauth/token",
        "revocation_endpoint": f"{SERVER.issuer}/oauth/revoke",
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "grant_types_supported": ["password", "refresh_token"],
        "scopes_supported": SCOPE.split(),
    }


class Validator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> TokenRecord | None:
        return STATE.by_access.get(token_string)

    def validate_token(self, token: TokenRecord | None, scopes: Any, req: Any) -> None:
        with STATE.lock:
            if token is None:
                reason = "unknown"
            elif token.is_revoked():
                reason = "revoked"
            elif token.is_expired():
                reason = "expired"
            else:
                reason = ""
            if reason:
                STATE.counters["api_rejected"] += 1
                STATE.counters[f"api_rejected_{reason}"] += 1
            else:
                STATE.counters["api_ok"] += 1
        super().validate_token(token, scopes, req)


def access_ttl(client: Any, grant_type: str) -> int:
    return STATE.faults.access_ttl_s


def create_app() -> Flask:
    app = Flask("kitty-test-oauth")
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda **_kw: secrets.token_urlsafe(32),
            refresh_token_generator=lambda **_kw: secrets.token_urlsafe(32),
            expires_generator=access_ttl,
        ),
    )
    server.register_grant(PasswordGrant, [session_extension])
    server.register_grant(RotatingRefreshGrant, [session_extension])
    server.register_client_auth_method(PrivateKeyJWT.CLIENT_AUTH_METHOD, PrivateKeyJWT())
    server.register_endpoint(FamilyRevocation)
    require_oauth = ResourceProtector()
    require_oauth.register_token_validator(Validator())

    @app.before_request
    def loopback_only() -> Response | None:
        if request.remote_addr not in LOOPBACK_HOSTS:
            return _json({"error": "forbidden"}, 403)
        return None

    @app.post("/oauth/token")
    def token() -> Response:
        if request.form.get("grant_type") != "refresh_token":
            with STATE.lock:
                response = _token_response(server)
                if response.status_code == 200:
                    STATE.counters["login_ok"] += 1
            return response
        return _refresh(server)

    @app.get("/.well-known/openid-configuration")
    def openid_configuration() -> Response:
        return _json(metadata(SERVER.issuer))

    @app.get(f"/.well-known/oauth-authorization-server{TENANT_PATH}")
    def rfc8414_metadata() -> Response:
        return _json(metadata(SERVER.issuer + TENANT_PATH))

    @app.post("/oauth/revoke")
    def revoke_token() -> Response:
        with STATE.lock:
            # The Flask server returns a flask Response here (see _token_response).
            answer = server.create_endpoint_response("revocation")  # type: ignore[no-untyped-call]  # untyped in the stub
            return cast(Response, answer)

    @app.get("/api/me")
    @require_oauth()  # type: ignore[untyped-decorator]  # authlib ships no type hints
    def me() -> Response:
        record = current_token._get_current_object()  # werkzeug's documented proxy unwrap
        assert isinstance(record, TokenRecord), type(record)  # what Validator authenticated
        return _json({"sub": record.family.user, "session_id": record.family.family_id})

    @app.get("/admin/counters")
    def counters() -> Response:
        with STATE.lock:
            return _json(dict(STATE.counters))

    @app.get("/admin/log")
    def log() -> Response:
        with STATE.lock:
            return _json(list(STATE.log))

    @app.post("/admin/leaks")
    def leaks() -> Response:
        paths = [str(p) for p in request.get_json(force=True)["paths"]]
        with STATE.lock:
            issued = [*STATE.by_access, *(t for t in STATE.by_refresh if t)]
        found = {}
        for path in paths:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError as exc:
                return _json({"error": "unreadable", "error_description": f"{path}: {exc}"}, 400)
            found[path] = sum(1 for token in issued if token in text)
        return _json({"leaks": found, "issued": len(issued)})

    @app.post("/admin/fault")
    def fault() -> Response:
        changes = request.get_json(force=True)
        with STATE.lock:
            current = dataclasses.asdict(STATE.faults)
            unknown = sorted(set(changes) - set(current))
            if unknown:
                return _json({"error": "unknown_fault", "error_description": str(unknown)}, 400)
            STATE.faults = Faults(**{**current, **changes})
            if STATE.faults.hold_next:
                STATE.release.clear()
            return _json(dataclasses.asdict(STATE.faults))

    @app.post("/admin/release")
    def release() -> Response:
        STATE.release.set()
        return _json({"released": True})

    @app.post("/admin/revoke")
    def revoke() -> Response:
        session_id = request.get_json(force=True).get("session_id")
        with STATE.lock:
            family = STATE.families.get(session_id)
            if family is None:
                return _json({"error": "unknown_session"}, 404)
            STATE.revoke_family(family)
            return _json({"revoked": session_id})

    @app.post("/admin/reset")
    def reset() -> Response:
        global STATE  # one process, one store: reset swaps it whole
        with STATE.lock:
            STATE.release.set()  # never strand a parked request of the previous test
            STATE = State()
        return _json({"reset": True})

    return app


def query_client(client_id: str) -> Client | None:
    if client_id == CLIENT_ID:
        return Client()
    if client_id == CONFIDENTIAL_CLIENT_ID:
        return Client(CONFIDENTIAL_CLIENT_ID, CONFIDENTIAL_SECRET)
    if client_id == JWT_CLIENT_ID and SERVER.client_jwks is not None:
        return Client(JWT_CLIENT_ID, jwks=SERVER.client_jwks)
    return None


def _token_response(server: AuthorizationServer) -> Response:
    # types-authlib declares the framework-neutral tuple, but the Flask AuthorizationServer
    # returns its handle_response() result: a flask Response.
    return cast(Response, server.create_token_response())


def _refresh(server: AuthorizationServer) -> Response:
    presented = request.form.get("refresh_token", "")
    state = STATE  # pin: a concurrent /admin/reset must not split this request across stores
    with state.lock:
        state.counters["refresh_requests"] += 1
        faults = state.faults
        if faults.fail_503 > 0:
            faults.fail_503 -= 1
            state.counters["served_503"] += 1
            return _logged(state, presented, _json({"error": "temporarily_unavailable"}, 503))
        hold = faults.hold_next > 0
        if hold:
            faults.hold_next -= 1
            state.counters["held"] += 1
        delay_s, delay_action = faults.delay_s, faults.delay_action
    if hold:
        state.release.wait(HOLD_MAX_S)
    if delay_s > 0:
        # The fault under test IS a slow server; this sleep orders nothing across processes.
        with state.lock:
            state.counters["delayed"] += 1
        time.sleep(delay_s)
        if delay_action == "drop":
            with state.lock:
                state.counters["dropped_after_delay"] += 1
                return _logged(state, presented, _json({"error": "temporarily_unavailable"}, 503))
    with state.lock:
        response = _token_response(server)
        if response.status_code == 200:
            state.counters["refresh_ok"] += 1
        elif (response.get_json(silent=True) or {}).get("error") == "invalid_grant":
            state.counters["refresh_rejected"] += 1
        return _logged(state, presented, response)


def _logged(state: State, presented: str, response: Response) -> Response:
    body = response.get_json(silent=True) or {}
    record = state.by_refresh.get(presented)
    state.log.append(
        {
            "seq": len(state.log),
            "rt": token_hash(presented) if presented else None,
            "status": response.status_code,
            "error": body.get("error"),
            "family": record.family.family_id if record else None,
            "remaining_s": (
                round(record.issued_at + record.expires_in - time.time(), 3) if record else None
            ),
        }
    )
    return response


def _json(payload: Any, status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


def _exit_when_parent_goes(stream: Any) -> None:
    # The parent holds our stdin; EOF means it is gone (or done with us): never outlive it.
    stream.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="_child.py oauth-server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", choices=LOOPBACK_HOSTS)
    parser.add_argument("--port", type=int, default=0, help="0 = an ephemeral port (printed)")
    parser.add_argument("--access-ttl", type=int, default=300, help="access token expires_in (s)")
    parser.add_argument("--client-jwks", help="public JWKS file of the kitty-jwt client's key")
    args = parser.parse_args(argv)
    STATE.faults.access_ttl_s = args.access_ttl
    if args.client_jwks:
        with open(args.client_jwks, encoding="utf-8") as handle:
            SERVER.client_jwks = json.load(handle)
    # werkzeug logs request lines; quiet it so nothing request-shaped reaches a captured log.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http, loopback only
    httpd = make_server(args.host, args.port, create_app(), threaded=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    SERVER.issuer = f"http://{host}:{httpd.server_port}"
    threading.Thread(target=_exit_when_parent_goes, args=(sys.stdin,), daemon=True).start()
    print(json.dumps({"port": httpd.server_port}), flush=True)
    httpd.serve_forever()
    return 0
