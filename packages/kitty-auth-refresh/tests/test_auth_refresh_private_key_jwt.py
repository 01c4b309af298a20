"""Issue 14: ``private_key_jwt`` (RFC 7523) and choosing the auth method from discovery.

Assertions are verified here with ``cryptography``'s public-key API, independently of the
signer: header, claims, whole-second times, a fresh ``jti`` per request, and the signature.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import sys
import urllib.parse
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from _authkit import TOKEN_URL, FakeClock, Script, make_session, ok, status
from kitty_auth_refresh import ClientConfigRejected, RefreshProtocolError, TokenEndpoint
from kitty_auth_refresh._assertion import CLIENT_ASSERTION_TYPE, ClientAssertionSigner
from kitty_auth_refresh._endpoint import choose_auth_method

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PEM = RSA_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
#: What must never leak: the base64 body of the PEM (any line of it).
PEM_LINES = [line for line in RSA_PEM.splitlines() if line and not line.startswith("-----")]


def _b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _decode(jwt: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    header, claims, signature = jwt.split(".")
    signing_input = f"{header}.{claims}".encode()
    return json.loads(_b64d(header)), json.loads(_b64d(claims)), signing_input, _b64d(signature)


def _form(request: httpx.Request) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(request.content.decode())


def _endpoint(script: Script, fake_clock: FakeClock, **kwargs: Any) -> TokenEndpoint:
    return TokenEndpoint(
        TOKEN_URL,
        "kitty-svc",
        transport=httpx.MockTransport(script),
        now=lambda: fake_clock.wall,
        **kwargs,
    )


def test_refresh_sends_a_signed_rfc7523_assertion(fake_clock: FakeClock) -> None:
    script = Script([ok(), ok()])
    with _endpoint(script, fake_clock, private_key=RSA_PEM, private_key_id="k1") as endpoint:
        assert endpoint.auth_method == "private_key_jwt"  # implied by the key
        endpoint.refresh(make_session())
        endpoint.refresh(make_session())
    jtis = []
    for request in script.requests:
        form = _form(request)
        assert "authorization" not in request.headers
        assert "client_secret" not in form
        assert form["client_id"] == ["kitty-svc"]
        assert form["client_assertion_type"] == [CLIENT_ASSERTION_TYPE]
        header, claims, signing_input, signature = _decode(form["client_assertion"][0])
        assert header == {"alg": "RS256", "typ": "JWT", "kid": "k1"}
        assert claims["iss"] == claims["sub"] == "kitty-svc"
        assert claims["aud"] == TOKEN_URL
        assert isinstance(claims["iat"], int)
        assert claims["exp"] - claims["iat"] == 60
        RSA_KEY.public_key().verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        jtis.append(claims["jti"])
    assert len(set(jtis)) == 2  # a fresh assertion per request (servers reject a repeated jti)


def test_other_key_types_and_algorithms_verify(fake_clock: FakeClock) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    cases: list[tuple[Any, str | None, str]] = [
        (ec_key, None, "ES256"),
        (ed_key, None, "EdDSA"),
        (RSA_KEY, "PS256", "PS256"),
        (ec.generate_private_key(ec.SECP384R1()), None, "ES384"),
    ]
    for key, alg, expected in cases:
        signer = ClientAssertionSigner(key, alg=alg)
        header, _claims, signing_input, signature = _decode(signer.assertion("c", "aud"))
        assert header["alg"] == expected
        if expected == "ES256":
            r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            assert len(signature) == 64
            ec_key.public_key().verify(
                encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256())
            )
        elif expected == "EdDSA":
            ed_key.public_key().verify(signature, signing_input)
        elif expected == "PS256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            RSA_KEY.public_key().verify(signature, signing_input, pss, hashes.SHA256())
        else:
            assert len(signature) == 96


def test_audience_override_and_whole_second_times() -> None:
    signer = ClientAssertionSigner(RSA_PEM.encode(), clock=lambda: 1000.9)
    _header, claims, _, _ = _decode(signer.assertion("c", "https://idp.example"))
    assert claims["iat"] == 1000
    assert claims["exp"] == 1060
    assert claims["aud"] == "https://idp.example"
    endpoint = TokenEndpoint(TOKEN_URL, "c", private_key=RSA_KEY, assertion_audience="https://i")
    assert endpoint.assertion_audience == "https://i"
    with pytest.raises(ValueError, match="assertion_audience"):
        TokenEndpoint(TOKEN_URL, "c", private_key=RSA_KEY, assertion_audience="")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n"}, "not an unencrypted PEM"),
        ({"private_key": 42}, "got a int"),
        ({"private_key": RSA_KEY.public_key()}, "got a RSAPublicKey"),
        ({"private_key": RSA_PEM, "signing_alg": "ES256"}, "does not fit"),
        ({"private_key": RSA_PEM, "private_key_id": ""}, "private_key_id"),
        (
            {"private_key": ec.generate_private_key(ec.SECP256K1())},
            "has no JWS alg",
        ),
    ],
)
def test_bad_keys_are_refused_without_quoting_them(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match="TokenEndpoint") as info:
        TokenEndpoint(TOKEN_URL, "c", **kwargs)
    assert needle in str(info.value)
    assert not [line for line in PEM_LINES if line in str(info.value)]


def test_a_key_without_cryptography_installed_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # cryptography is the optional `private-key-jwt` extra: without it (as after a plain
    # `pip install kitty-auth-refresh`) a key is refused at construction with the install line.
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives", None)
    with pytest.raises(ValueError, match="TokenEndpoint private_key") as info:
        TokenEndpoint(TOKEN_URL, "c", private_key=RSA_PEM)
    assert "pip install 'kitty-auth-refresh[private-key-jwt]'" in str(info.value)
    assert not [line for line in PEM_LINES if line in str(info.value)]
    TokenEndpoint(TOKEN_URL, "c")  # a public client needs none of it


def test_key_never_in_repr_pickle_logs_or_errors(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        assertion = _form(request)["client_assertion"][0]
        seen.append(assertion)
        # A hostile or careless server echoes the assertion back in its error text.
        body = {"error": "invalid_client", "error_description": f"bad assertion {assertion}"}
        return httpx.Response(401, json=body)

    with _endpoint(Script([echo]), fake_clock, private_key=RSA_PEM) as endpoint:
        text = repr(endpoint) + repr(endpoint._signer)
        assert "private_key_jwt" in repr(endpoint)
        with pytest.raises(TypeError, match="not picklable"):
            pickle.dumps(endpoint._signer)
        with pytest.raises(ClientConfigRejected) as info:
            endpoint.refresh(make_session())
    text += str(info.value) + repr(info.value) + caplog.text
    assert seen
    assert seen[0] not in text  # the assertion is scrubbed like a token
    assert "bad assertion ***" in str(info.value)
    assert not [line for line in PEM_LINES if line in text]


def test_revoke_authenticates_with_an_assertion(fake_clock: FakeClock) -> None:
    script = Script([status(200, {})])
    with _endpoint(
        script, fake_clock, private_key=RSA_KEY, revocation_url=f"{TOKEN_URL}/revoke"
    ) as endpoint:
        assert endpoint.revoke("some-refresh-token") is True
    form = _form(script.requests[0])
    assert form["token"] == ["some-refresh-token"]
    assert form["client_assertion_type"] == [CLIENT_ASSERTION_TYPE]
    _header, claims, _, _ = _decode(form["client_assertion"][0])
    assert claims["aud"] == TOKEN_URL  # the token endpoint: accepted at every endpoint


def test_secret_without_method_means_client_secret_basic(fake_clock: FakeClock) -> None:
    script = Script([ok()])
    with _endpoint(script, fake_clock, client_secret="s3cret") as endpoint:
        assert endpoint.auth_method == "client_secret_basic"
        endpoint.refresh(make_session())
    assert script.requests[0].headers["authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    ("supported", "secret", "key", "expected"),
    [
        (["client_secret_post", "client_secret_basic"], "s", None, "client_secret_basic"),
        (["client_secret_post", "private_key_jwt"], "s", None, "client_secret_post"),
        (None, "s", None, "client_secret_basic"),  # RFC 8414 default
        ("garbage", "s", None, "client_secret_basic"),
        (["client_secret_basic", "private_key_jwt"], None, RSA_KEY, "private_key_jwt"),
        (["client_secret_basic"], None, None, "none"),
        (["none"], None, None, "none"),
    ],
)
def test_choose_auth_method(supported: object, secret: object, key: object, expected: str) -> None:
    assert choose_auth_method(supported, client_secret=secret, private_key=key) == expected


def test_choose_auth_method_refuses_an_unsupported_credential() -> None:
    with pytest.raises(ValueError, match="private_key_jwt") as info:
        choose_auth_method(["client_secret_basic"], client_secret=None, private_key=RSA_KEY)
    assert "client_secret_basic" in str(info.value)
    with pytest.raises(ValueError, match="none of which"):
        choose_auth_method(["private_key_jwt"], client_secret="s", private_key=None)


def _discovery(issuer: str, methods: list[str] | None, token_requests: list[httpx.Request]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/.well-known/openid-configuration"):
            doc: dict[str, Any] = {"issuer": issuer, "token_endpoint": f"{issuer}/token"}
            if methods is not None:
                doc["token_endpoint_auth_methods_supported"] = methods
            return httpx.Response(200, json=doc)
        token_requests.append(request)
        return httpx.Response(200, json={"access_token": "A9", "expires_in": 60})

    return httpx.MockTransport(handler)


def test_from_issuer_picks_the_method_the_server_supports() -> None:
    issuer = "http://127.0.0.1:9/realm-pick"
    requests: list[httpx.Request] = []
    transport = _discovery(issuer, ["client_secret_post"], requests)
    with TokenEndpoint.from_issuer(
        issuer, "svc", transport=transport, client_secret="s3cret"
    ) as endpoint:
        assert endpoint.auth_method == "client_secret_post"
        endpoint.refresh(make_session())
    assert _form(requests[0])["client_secret"] == ["s3cret"]


def test_from_issuer_keeps_an_explicit_method_and_refuses_an_impossible_one() -> None:
    issuer = "http://127.0.0.1:9/realm-explicit"
    transport = _discovery(issuer, ["client_secret_post", "private_key_jwt"], [])
    with TokenEndpoint.from_issuer(
        issuer, "svc", transport=transport, client_secret="s", auth_method="client_secret_basic"
    ) as endpoint:
        assert endpoint.auth_method == "client_secret_basic"  # the app said so: it wins
    with TokenEndpoint.from_issuer(issuer, "svc", transport=transport, private_key=RSA_KEY) as ep:
        assert ep.auth_method == "private_key_jwt"
    other = "http://127.0.0.1:9/realm-nokey"
    with pytest.raises(ValueError, match="pass auth_method"):
        TokenEndpoint.from_issuer(
            other,
            "svc",
            transport=_discovery(other, ["client_secret_basic"], []),
            private_key=RSA_KEY,
        )


def test_protocol_error_text_never_carries_the_assertion(fake_clock: FakeClock) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, json={"error": _form(request)["client_assertion"][0]})

    with (
        _endpoint(Script([echo]), fake_clock, private_key=RSA_KEY) as endpoint,
        pytest.raises(RefreshProtocolError) as info,
    ):
        endpoint.refresh(make_session())
    assert str(info.value).endswith("(HTTP 418): ***")
