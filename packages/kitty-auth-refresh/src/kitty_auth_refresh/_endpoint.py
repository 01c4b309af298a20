"""``TokenEndpoint``: the RFC 6749 refresh grant over httpx (AUTH-09 .. AUTH-14).

Every answer is turned into either a new ``Session`` or one typed error; which error decides
what the transaction may do (only ``RefreshRejected`` can ever lead to a delete).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import logging
import math
import socket
import threading
import types
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import httpx

from ._assertion import CLIENT_ASSERTION_TYPE, ClientAssertionSigner
from ._errors import (
    ClientConfigRejected,
    RefreshProtocolError,
    RefreshRejected,
    RefreshReplay,
    TransientRefreshError,
)
from ._mask import SecretMask
from ._session import Session, as_utc, utc_now
from ._token_response import is_number, json_object, refreshed_session

logger = logging.getLogger("kitty_auth_refresh")

DEFAULT_HTTP_TIMEOUT_S: Final = 10.0
REVOKE_TIMEOUT_S: Final = 5.0
CLOCK_SKEW_WARN_S: Final = 60
REPLAY_RETRY_AFTER_MAX_S: Final = 5
MAX_ERROR_TEXT_CHARS: Final = 200
REJECTION_STATUSES: Final = frozenset({400, 401, 403})
REJECTION_KINDS: Final = frozenset({"invalid_grant", "session_invalid"})
CLIENT_REJECTION_STATUSES: Final = frozenset({400, 401})
CLIENT_REJECTION_KINDS: Final = frozenset(
    {"invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope"}
)
REPLAY_ERROR: Final = "refresh_replay_benign_retry"
AUTH_METHODS: Final = frozenset(
    {"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}
)
SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})
#: RFC 8414 §2: a metadata document without token_endpoint_auth_methods_supported means this.
DEFAULT_SUPPORTED_AUTH_METHODS: Final = ("client_secret_basic",)
_RESERVED_PARAMS: Final = frozenset(
    {
        "grant_type",
        "refresh_token",
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    }
)
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost."})
# httpcore trace events whose return value is a freshly connected network stream.
_STREAM_EVENTS: Final = (
    ".connect_tcp.complete",
    ".connect_unix_socket.complete",
    ".start_tls.complete",
)


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def scrub(text: object, *secrets: str) -> str | None:
    """Server-supplied text, cut to 200 chars, with every occurrence of a token replaced."""
    if not isinstance(text, str) or not text:
        return None
    return SecretMask(*secrets).scrub(text)[:MAX_ERROR_TEXT_CHARS]


class _Deadline:
    """A whole-request deadline (AUTH-24). httpx timeouts bound each phase and each read, so a
    server trickling one byte per read would hold the refresh lock indefinitely. A timer shuts
    down the request's sockets when the budget is spent: the blocked read wakes at once and
    httpx raises, which ``refresh`` reports as a timeout.

    Sockets are learnt from httpcore's ``trace`` request extension as each connection is made;
    the request says ``Connection: close`` so a pooled connection (which would produce no
    connect event) is never reused.
    """

    def __init__(self, limit: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self.fired = False  # True once a live request was cut (so its error is a timeout)
        self._timer = threading.Timer(limit, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._expired = True  # a timer already running now finds nothing to cut
            self._sockets.clear()

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if not event.endswith(_STREAM_EVENTS):
            return
        get_extra_info = getattr(info.get("return_value"), "get_extra_info", None)
        sock = get_extra_info("socket") if callable(get_extra_info) else None
        if not isinstance(sock, socket.socket):  # pragma: no cover - httpcore streams have one
            return
        with self._lock:
            if not self._expired:
                self._sockets.append(sock)
                return
            # Connected after the deadline (a connect cannot be interrupted): cut it now.
            self.fired = True
        _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._expired:  # pragma: no cover - the timer lost a race with __exit__
                return
            self._expired = True
            sockets, self._sockets = self._sockets, []
            self.fired = bool(sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # shutdown(), not close(): only shutdown wakes a recv blocked in another thread. The base
    # class method is called on purpose: SSLSocket.shutdown also drops its SSL object, which
    # the reading thread may still be using.
    with contextlib.suppress(OSError):  # already closed, or detached by the TLS wrap
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class TokenEndpoint:
    """A client for one OAuth token endpoint.

    ``transport`` accepts any httpx transport (``httpx.MockTransport`` in tests). ``now`` is the
    wall-clock seam used for receipt-time expiry. For loopback URLs proxy environment variables
    are ignored (a loopback request must never leave the machine); remote URLs honour them.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        timeout: float = DEFAULT_HTTP_TIMEOUT_S,
        *,
        transport: httpx.BaseTransport | None = None,
        now: Callable[[], dt.datetime] = utc_now,
        client_secret: str | None = None,
        auth_method: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        revocation_url: str | None = None,
        private_key: object = None,
        private_key_id: str | None = None,
        signing_alg: str | None = None,
        assertion_audience: str | None = None,
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme if isinstance(url, str) else ""
        if scheme not in ("http", "https"):
            raise ValueError(f"TokenEndpoint url must be an http(s) URL, got {url!r}")
        if not isinstance(client_id, str) or not client_id:
            raise ValueError("TokenEndpoint client_id must be a non-empty string")
        if not (isinstance(timeout, int | float) and timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"TokenEndpoint timeout must be a positive number, got {timeout!r}")
        if revocation_url is not None and urllib.parse.urlsplit(revocation_url).scheme not in (
            "http",
            "https",
        ):
            raise ValueError(
                f"TokenEndpoint revocation_url must be http(s), got {revocation_url!r}"
            )
        if auth_method is None:  # the app did not say: what its credentials imply
            auth_method = infer_auth_method(client_secret, private_key)
        if auth_method not in AUTH_METHODS:
            raise ValueError(
                f"TokenEndpoint auth_method must be one of {sorted(AUTH_METHODS)}, "
                f"got {auth_method!r}"
            )
        if auth_method in SECRET_METHODS:
            if not isinstance(client_secret, str) or not client_secret:
                # Never echo the value: it is a secret.
                raise ValueError(f"TokenEndpoint auth_method={auth_method} needs a client_secret")
        elif client_secret is not None:
            raise ValueError("TokenEndpoint client_secret needs a client_secret_* auth_method")
        signer: ClientAssertionSigner | None = None
        if auth_method == "private_key_jwt":
            if private_key is None:
                raise ValueError("TokenEndpoint auth_method=private_key_jwt needs a private_key")
            signer = ClientAssertionSigner(private_key, alg=signing_alg, key_id=private_key_id)
        elif private_key is not None or signing_alg is not None or private_key_id is not None:
            raise ValueError("TokenEndpoint private_key needs auth_method='private_key_jwt'")
        if assertion_audience is not None and (
            not isinstance(assertion_audience, str) or not assertion_audience
        ):
            raise ValueError("TokenEndpoint assertion_audience must be a non-empty string")
        params = dict(extra_params or {})
        for key, value in params.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError("TokenEndpoint extra_params must map strings to strings")
            if key in _RESERVED_PARAMS:
                raise ValueError(f"TokenEndpoint extra_params must not set {key!r}")
        self.url = url
        self.client_id = client_id
        self.auth_method = auth_method
        self.extra_params: Mapping[str, str] = types.MappingProxyType(params)
        self._client_secret = client_secret
        self._signer = signer
        self.assertion_audience = assertion_audience or url
        self.revocation_url = revocation_url
        self.timeout = float(timeout)
        self._transport = transport
        self._now = now
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    @classmethod
    def from_issuer(
        cls,
        issuer: str,
        client_id: str,
        timeout: float = DEFAULT_HTTP_TIMEOUT_S,
        *,
        transport: httpx.BaseTransport | None = None,
        **kwargs: Any,
    ) -> TokenEndpoint:
        """Discover the token (and revocation) endpoint of ``issuer``.

        Tries ``/.well-known/openid-configuration`` then ``/.well-known/oauth-authorization-server``
        (RFC 8414). The document's ``issuer`` must equal ``issuer``; every URL must be https unless
        loopback. Documents are cached per process. Raises ``RefreshProtocolError`` for a bad or
        missing document and ``TransientRefreshError`` when the issuer cannot be reached.
        """
        _require_secure(issuer, "issuer")
        doc = _discover(issuer, timeout, transport)
        token_url = doc.get("token_endpoint")
        if not isinstance(token_url, str):
            raise RefreshProtocolError(None, "the discovery document has no token_endpoint")
        _require_secure(token_url, "token_endpoint")
        revocation = doc.get("revocation_endpoint")
        if isinstance(revocation, str):
            _require_secure(revocation, "revocation_endpoint")
            kwargs.setdefault("revocation_url", revocation)
        if kwargs.get("auth_method") is None:
            kwargs["auth_method"] = choose_auth_method(
                doc.get("token_endpoint_auth_methods_supported"),
                client_secret=kwargs.get("client_secret"),
                private_key=kwargs.get("private_key"),
            )
        return cls(token_url, client_id, timeout, transport=transport, **kwargs)

    def __repr__(self) -> str:
        key = "" if self._signer is None else f", signer={self._signer!r}"  # alg and kid only
        return (
            f"TokenEndpoint(url={self.url!r}, client_id={self.client_id!r}, "
            f"auth_method={self.auth_method!r}{key})"
        )

    def _auth_form_and_headers(self) -> tuple[dict[str, str], dict[str, str]]:
        """Client authentication (RFC 6749 §2.3.1): Basic, form fields, or a public client."""
        secret = self._client_secret or ""
        if self.auth_method == "client_secret_basic":
            # Each part form-urlencoded BEFORE base64 (§2.3.1), so ':' in an id stays unambiguous.
            pair = f"{_form_encode(self.client_id)}:{_form_encode(secret)}"
            token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
            return {}, {"Authorization": f"Basic {token}"}
        if self.auth_method == "client_secret_post":
            return {"client_id": self.client_id, "client_secret": secret}, {}
        if self._signer is not None:  # private_key_jwt (RFC 7523 §2.2): a fresh JWT each time
            assertion = self._signer.assertion(self.client_id, self.assertion_audience)
            form = {
                "client_id": self.client_id,
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "client_assertion": assertion,
            }
            return form, {}
        return {"client_id": self.client_id}, {}

    def _http(self) -> httpx.Client:
        # One pooled client, created on first use: building an httpx client (SSL context) costs
        # milliseconds, which would otherwise land inside every lock hold. httpx is imported here,
        # not at module level: importing it costs ~100 ms when rich is installed (its CLI module),
        # which `kitty-doctor` (a read-only status command that never refreshes) must not pay.
        import httpx

        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(
                    transport=self._transport,
                    trust_env=not is_loopback_url(self.url),
                    follow_redirects=False,
                )
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> TokenEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def refresh(self, session: Session, timeout: float | None = None) -> Session:
        """Present ``session.refresh_token`` once; return the new session or raise a typed error."""
        import httpx

        limit = self.timeout if timeout is None else max(0.001, min(timeout, self.timeout))
        auth_form, auth_headers = self._auth_form_and_headers()
        form = {
            "grant_type": "refresh_token",
            "refresh_token": session.refresh_token,
            **auth_form,
            **self.extra_params,
        }
        client = self._http()
        deadline = _Deadline(limit)
        request = client.build_request(
            "POST",
            self.url,
            data=form,
            headers={"Accept": "application/json", "Connection": "close", **auth_headers},
            timeout=httpx.Timeout(limit),
            extensions={"trace": deadline.trace},
        )
        # Expiry counts from the moment the request left, not from receipt (issue 14).
        sent = as_utc(self._now())
        try:
            with deadline:
                # Streamed, then read here: a body that fails to decode (say, gzip announced
                # and garbage sent) must become a typed error that still names the status.
                response = client.send(request, stream=True)
                try:
                    response.read()
                except httpx.DecodingError:
                    reason = "the response body could not be decoded"
                    raise RefreshProtocolError(response.status_code, reason) from None
                finally:
                    response.close()
        except httpx.TimeoutException as exc:
            raise TransientRefreshError("timeout", None, type(exc).__name__) from None
        except httpx.TransportError as exc:
            kind = "timeout" if deadline.fired else "transport"
            raise TransientRefreshError(kind, None, type(exc).__name__) from None
        received = as_utc(self._now())
        self._check_skew(response, received)
        return self._interpret(response, session, sent, form.get("client_assertion", ""))

    def revoke(self, token: str, token_type_hint: str = "refresh_token") -> bool:  # noqa: S107
        """RFC 7009 revocation, best effort: True on 200; False (one warning) on anything else,
        including an unreachable endpoint. Never raises for network or server trouble."""
        import httpx

        if self.revocation_url is None:
            return False
        auth_form, auth_headers = self._auth_form_and_headers()
        form = {"token": token, "token_type_hint": token_type_hint, **auth_form}
        limit = min(self.timeout, REVOKE_TIMEOUT_S)
        try:
            response = self._http().post(
                self.revocation_url,
                data=form,
                headers={"Accept": "application/json", **auth_headers},
                timeout=httpx.Timeout(limit),
            )
        except httpx.HTTPError as exc:
            logger.warning("token revocation failed error=%s", type(exc).__name__)
            return False
        if response.status_code != 200:
            logger.warning("token revocation failed status=%d", response.status_code)
            return False
        return True

    def _check_skew(self, response: httpx.Response, received: dt.datetime) -> None:
        raw = response.headers.get("date")
        if not raw:
            return
        # Imported here: email is a large package and only a response with a Date header uses it.
        import email.utils

        try:
            server_time = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return
        skew = (as_utc(server_time) - received).total_seconds()
        if abs(skew) > CLOCK_SKEW_WARN_S:
            logger.warning("clock skew detected skew_s=%d", round(skew))

    def _interpret(
        self, response: httpx.Response, old: Session, sent: dt.datetime, assertion: str = ""
    ) -> Session:
        status = response.status_code
        secrets = (old.refresh_token, old.access_token, self._client_secret or "", assertion)
        body = json_object(response)
        raw_error = body.get("error") if body is not None else None
        # A non-string ``error`` (a list, an object) is only ever a protocol error.
        error = raw_error if isinstance(raw_error, str) else None
        if body is not None and raw_error is not None and error is None and status != 200:
            raise RefreshProtocolError(status, "the error field is not a string")
        description = scrub(body.get("error_description"), *secrets) if body else None
        if status == 200:
            if body is None:
                raise RefreshProtocolError(status, "the 200 response is not a JSON object")
            return refreshed_session(old, body, sent)
        if status in REJECTION_STATUSES and error in REJECTION_KINDS:
            raise RefreshRejected(str(error), description, status)
        if status in CLIENT_REJECTION_STATUSES and error in CLIENT_REJECTION_KINDS:
            raise ClientConfigRejected(status, str(error), description)
        if status == 409:
            if error == REPLAY_ERROR and body is not None:
                raise RefreshReplay(_retry_after(body, response))
            raise RefreshProtocolError(status, scrub(error, *secrets) or description)
        if status >= 500:
            raise TransientRefreshError("server_error", status, description)
        if status == 408:
            raise TransientRefreshError("timeout", status, description)
        if status == 429:
            raise TransientRefreshError("rate_limited", status, description)
        raise RefreshProtocolError(status, scrub(error, *secrets) or description)


def infer_auth_method(client_secret: object, private_key: object) -> str:
    """The method the app's credentials imply when it names none: a key signs
    (``private_key_jwt``), a secret goes in HTTP Basic (RFC 6749 §2.3.1: every server must
    support it), nothing means a public client."""
    if private_key is not None:
        return "private_key_jwt"
    if client_secret is not None:
        return "client_secret_basic"
    return "none"


def choose_auth_method(supported: object, *, client_secret: object, private_key: object) -> str:
    """Pick the client authentication from discovery's ``token_endpoint_auth_methods_supported``
    (RFC 8414 §2; absent means ``["client_secret_basic"]``) and the credentials the app has.

    A key → ``private_key_jwt``; a secret → ``client_secret_basic``, else ``client_secret_post``;
    neither → ``none`` (a public client; servers often leave ``none`` out of the list although
    they accept public clients, so its absence is not an error). A credential the server
    supports no method for is a ``ValueError`` naming what it does support.
    """
    if isinstance(supported, list) and all(isinstance(m, str) for m in supported):
        methods: list[str] = list(supported)
    else:
        methods = list(DEFAULT_SUPPORTED_AUTH_METHODS)
    if private_key is not None:
        wanted: tuple[str, ...] = ("private_key_jwt",)
    elif client_secret is not None:
        wanted = ("client_secret_basic", "client_secret_post")
    else:
        return "none"
    for method in wanted:
        if method in methods:
            return method
    raise ValueError(
        f"the issuer supports token endpoint auth methods {sorted(methods)}, none of which fits "
        f"the credentials given (usable: {list(wanted)}); pass auth_method= explicitly"
    )


_discovery_cache: dict[str, dict[str, Any]] = {}
_discovery_guard = threading.Lock()


def _require_secure(url: str, what: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme == "https" or (scheme == "http" and is_loopback_url(url)):
        return
    raise ValueError(f"{what} must be an https URL (http only for loopback), got {url!r}")


def _discovery_urls(issuer: str) -> list[str]:
    base = issuer.rstrip("/")
    parts = urllib.parse.urlsplit(base)
    rfc8414 = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}"
    return [f"{base}/.well-known/openid-configuration", rfc8414]


def _discover(issuer: str, timeout: float, transport: httpx.BaseTransport | None) -> dict[str, Any]:
    import httpx

    with _discovery_guard:
        cached = _discovery_cache.get(issuer)
    if cached is not None:
        return cached
    last = "no discovery document found"
    with httpx.Client(
        transport=transport, trust_env=not is_loopback_url(issuer), follow_redirects=False
    ) as client:
        for url in _discovery_urls(issuer):
            try:
                response = client.get(url, headers={"Accept": "application/json"}, timeout=timeout)
            except httpx.HTTPError as exc:
                raise TransientRefreshError("transport", None, type(exc).__name__) from None
            if response.status_code != 200:
                last = f"{url} answered HTTP {response.status_code}"
                continue
            doc = json_object(response)
            if doc is None:
                last = f"{url} is not a JSON object"
                continue
            if doc.get("issuer") != issuer:
                raise RefreshProtocolError(200, "the discovery document names another issuer")
            with _discovery_guard:
                _discovery_cache[issuer] = doc
            return doc
    raise RefreshProtocolError(None, last)


def _form_encode(value: str) -> str:
    # Percent-encoding with a space as %20, not '+': every form decoder reads it the same, and
    # so do servers that decode with plain unquote (Authlib among them).
    return urllib.parse.quote(value, safe="")


def _retry_after(body: dict[str, Any], response: httpx.Response) -> int:
    raw: object = body.get("retry_after")
    if raw is None:
        raw = response.headers.get("retry-after")
    value = 0
    if is_number(raw):
        value = int(raw)
    elif isinstance(raw, str):
        with contextlib.suppress(ValueError):
            value = int(raw.strip())
    return max(0, min(REPLAY_RETRY_AFTER_MAX_S, value))
