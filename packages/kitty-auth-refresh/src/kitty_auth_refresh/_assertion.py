"""``private_key_jwt`` client authentication (RFC 7523 §2.2, OpenID Connect Core §9).

The client proves who it is with a short-lived JWT signed by a private key the app supplies:
``iss`` = ``sub`` = the client id, ``aud`` = the token endpoint URL (accepted by every server we
know: RFC 7523 §3 names it, and servers that follow the newer "issuer as audience" guidance also
accept the token endpoint), a fresh random ``jti`` and ``iat``/``exp`` in whole seconds.

The JWS compact serialisation is a dozen lines and is written here; only the signature needs a
cryptographic library (``cryptography``, the ``private-key-jwt`` extra: public clients neither
install nor import it).

The key object lives only in ``ClientAssertionSigner._key``: it is never formatted into a
message, ``repr`` or log line, and errors about it never quote it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Lifetime of one client assertion. Short: it is a bearer credential until it expires.
CLIENT_ASSERTION_LIFETIME_S: Final = 60
SIGNING_ALGS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_EC_ALG_BY_CURVE: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_SIZE_BY_ALG: Final = {"ES256": 32, "ES384": 48, "ES512": 66}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(obj: dict[str, Any]) -> str:
    return _b64url(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8"))


class ClientAssertionSigner:
    """Signs RFC 7523 client assertions with one private key.

    ``private_key`` is a PEM (``str`` or ``bytes``, PKCS#8 or traditional, unencrypted) or a
    ``cryptography`` private key object (RSA, EC P-256/384/521, Ed25519). ``alg`` defaults to
    RS256 for RSA, ES256/384/512 by curve, EdDSA for Ed25519. ``key_id`` becomes the ``kid``
    header (needed when the client's registered JWKS holds several keys).
    """

    def __init__(
        self,
        private_key: object,
        *,
        alg: str | None = None,
        key_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = _load_key(private_key)
        self.alg = _check_alg(self._key, alg)
        if key_id is not None and (not isinstance(key_id, str) or not key_id):
            raise ValueError("TokenEndpoint private_key_id must be a non-empty string")
        self.key_id = key_id
        self._clock = clock

    def __repr__(self) -> str:
        return f"ClientAssertionSigner(alg={self.alg!r}, key_id={self.key_id!r})"

    def __reduce__(self) -> Any:
        raise TypeError("a client assertion signer holds a private key and is not picklable")

    def assertion(self, client_id: str, audience: str) -> str:
        """A fresh signed JWT (never reuse one: servers reject a repeated ``jti``)."""
        now = int(self._clock())  # whole seconds: servers compare iat/exp as integers
        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT"}
        if self.key_id is not None:
            header["kid"] = self.key_id
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + CLIENT_ASSERTION_LIFETIME_S,
        }
        signing_input = f"{_segment(header)}.{_segment(claims)}"
        return f"{signing_input}.{_b64url(self._sign(signing_input.encode('ascii')))}"

    def _sign(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        bits = int(self.alg[2:])
        digests: dict[int, hashes.HashAlgorithm] = {
            256: hashes.SHA256(),
            384: hashes.SHA384(),
            512: hashes.SHA512(),
        }
        digest = digests[bits]
        if isinstance(key, rsa.RSAPrivateKey):
            if self.alg.startswith("PS"):
                pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
                return key.sign(data, pss, digest)
            return key.sign(data, padding.PKCS1v15(), digest)
        assert isinstance(key, ec.EllipticCurvePrivateKey)  # _check_alg admitted nothing else
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        size = _EC_SIZE_BY_ALG[self.alg]
        # JWS wants the raw fixed-width r || s (RFC 7518 §3.4), not the DER sequence.
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _load_key(private_key: object) -> PrivateKeyTypes:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    except ImportError:
        raise ValueError(
            "TokenEndpoint private_key needs the 'cryptography' package, which kitty-auth-refresh "
            "installs only on request: pip install 'kitty-auth-refresh[private-key-jwt]'"
        ) from None

    key: object = private_key
    if isinstance(private_key, str):
        key = private_key.encode("utf-8")
    if isinstance(key, bytes):
        try:
            key = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError):
            # Never quote the value or cryptography's message about it: it is a secret.
            raise ValueError(
                "TokenEndpoint private_key is not an unencrypted PEM private key "
                "(PKCS#8 or traditional RSA/EC)"
            ) from None
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(
        "TokenEndpoint private_key must be a PEM or a cryptography RSA, EC or Ed25519 private key, "
        f"got a {type(private_key).__name__}"
    )


def _check_alg(key: PrivateKeyTypes, alg: str | None) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        allowed = {a for a in SIGNING_ALGS if a[:2] in ("RS", "PS")}
        default = "RS256"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        curve_alg = _EC_ALG_BY_CURVE.get(key.curve.name)
        if curve_alg is None:
            raise ValueError(f"TokenEndpoint private_key: EC curve {key.curve.name} has no JWS alg")
        allowed, default = {curve_alg}, curve_alg
    else:
        allowed, default = {"EdDSA"}, "EdDSA"
    chosen = default if alg is None else alg
    if chosen not in allowed:
        raise ValueError(
            f"TokenEndpoint signing_alg {chosen!r} does not fit this key; use one of "
            f"{sorted(allowed)}"
        )
    return chosen
