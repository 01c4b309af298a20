"""ES256 JSON Web Signatures and keys for the test servers and harnesses (stdlib + cryptography).

Written here on purpose rather than taken from kitty's signer: the logins the tests start from,
the keys the servers trust and the id_tokens they issue must not depend on the code under test.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

#: The `kid` of the key a test registers for its private_key_jwt client.
CLIENT_KEY_ID: Final = "test-client"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def es256_jwt(key: EllipticCurvePrivateKey, claims: Mapping[str, Any], kid: str) -> str:
    """A compact JWS (RFC 7515) of `claims`, signed ES256 with a P-256 key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    header = {"alg": "ES256", "kid": kid, "typ": "JWT"}
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    # JWS wants the fixed-width r || s (RFC 7518 §3.4), not cryptography's DER.
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def public_jwk(key: EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    """The public half of a P-256 key as a JWK (RFC 7517)."""
    numbers = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    }


def client_key_pair(workdir: Path) -> tuple[EllipticCurvePrivateKey, Path]:
    """A fresh P-256 key for a private_key_jwt client: (the private key, the path of a JWKS file
    holding its public half, which the server registers for that client)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = workdir / f"client-{id(key):x}.jwks.json"
    path.write_text(json.dumps({"keys": [public_jwk(key, CLIENT_KEY_ID)]}))
    return key, path
