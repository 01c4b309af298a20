"""The persisted OAuth material, its identity, and its on-disk JSON codec (AUTH-02, -03, -06)."""

from __future__ import annotations

import datetime as dt
import json
import math
import types
from collections.abc import Mapping
from typing import Any, Final

from kitty_filelock import frozen_dataclass, frozen_field, frozen_field_names

from ._errors import CorruptSession

STORE_SCHEMA_VERSION: Final = 1

_REQUIRED_STR: Final = ("session_id", "access_token", "refresh_token")
_OPTIONAL_STR: Final = ("scope", "token_type", "subject", "email", "id_token")
_TIMES: Final = ("access_expires_at", "issued_at")
KNOWN_KEYS: Final = frozenset(
    ("schema_version", *_REQUIRED_STR, *_OPTIONAL_STR, *_TIMES, "refresh_expires_at")
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC; a naive value is taken to be UTC already (what every kitty writer produces)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    """UTC ISO-8601 with a ``Z``; sub-second digits only when present (round-trips exactly)."""
    value = as_utc(value)
    spec = "microseconds" if value.microsecond else "seconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_time(raw: str) -> dt.datetime:
    """Inverse of :func:`format_time`; also accepts offsets and naive (= UTC) values."""
    return as_utc(dt.datetime.fromisoformat(raw))


def session_hash(session_id: str) -> str:
    """First 8 hex digits of sha256(session_id): enough to correlate log lines, reveals nothing."""
    import hashlib  # here, not at import: a reader that never correlates never pays ~2.5 ms

    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:8]


@frozen_dataclass
class Session:
    """One OAuth session. Immutable; a refresh produces a new ``Session``.

    ``extra`` holds unknown top-level JSON fields, written back unchanged. ``repr``/``str`` never
    show token values.
    """

    session_id: str
    access_token: str
    refresh_token: str
    access_expires_at: dt.datetime
    issued_at: dt.datetime
    refresh_expires_at: dt.datetime | None = None
    scope: str | None = None
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type name, not a secret
    subject: str | None = None
    email: str | None = None
    id_token: str | None = None
    extra: Mapping[str, Any] = frozen_field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in _REQUIRED_STR:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                # The field name only: the value may be a token.
                raise ValueError(f"Session.{name} must be a non-empty string")
        for name in ("access_expires_at", "issued_at", "refresh_expires_at"):
            value = getattr(self, name)
            if value is None and name == "refresh_expires_at":
                continue
            if not isinstance(value, dt.datetime):
                raise TypeError(f"Session.{name} must be a datetime, got {type(value).__name__}")
            object.__setattr__(self, name, as_utc(value))
        for name in _OPTIONAL_STR:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Session.{name} must be a string or None")
        clash = KNOWN_KEYS.intersection(self.extra)
        if clash:
            raise ValueError(f"Session.extra must not contain known fields: {sorted(clash)}")
        # A private copy behind a read-only view: the caller's dict cannot change us later.
        object.__setattr__(self, "extra", types.MappingProxyType(dict(self.extra)))

    @property
    def session_hash(self) -> str:
        return session_hash(self.session_id)

    @property
    def unverified_claims(self) -> UnverifiedClaims | None:
        """The id_token's claims, decoded WITHOUT verifying its signature. Display only."""
        return unverified_claims(self.id_token) if self.id_token else None

    def access_ttl_s(self, now: dt.datetime) -> float:
        """Seconds until the access token expires (negative once expired)."""
        return (self.access_expires_at - as_utc(now)).total_seconds()

    def __repr__(self) -> str:
        return (
            f"Session(session_id={self.session_id!r}, access_token='***', refresh_token='***', "
            f"access_expires_at={format_time(self.access_expires_at)!r}, "
            f"issued_at={format_time(self.issued_at)!r}, "
            f"refresh_expires_at="
            f"{format_time(self.refresh_expires_at) if self.refresh_expires_at else None!r}, "
            f"scope={self.scope!r}, token_type={self.token_type!r}, subject={self.subject!r}, "
            f"email={self.email!r}, id_token={'***' if self.id_token else None!r}, "
            f"extra={sorted(self.extra)!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, ...]:
        # MappingProxyType does not pickle; rebuild from a plain dict.
        values = [getattr(self, name) for name in frozen_field_names(self)]
        values[-1] = dict(self.extra)
        return (type(self), tuple(values))


@frozen_dataclass
class UnverifiedClaims:
    """Display-only claims of an OpenID Connect id_token. NOT VERIFIED: the signature, issuer,
    audience and expiry were not checked, so never use them for an authorisation decision."""

    sub: str | None = None
    email: str | None = None
    name: str | None = None
    exp: dt.datetime | None = None


def unverified_claims(id_token: str) -> UnverifiedClaims | None:
    """Decode the payload of a JWS-compact id_token WITHOUT verifying it; None if it is not one.

    The claims are for display (``auth_status``) only: nothing here checks the signature.
    """
    parts = id_token.split(".") if isinstance(id_token, str) else []
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    import base64  # here, not at import: only a reader of claims needs it

    try:
        doc = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        return None
    if not isinstance(doc, dict):
        return None

    def text(name: str) -> str | None:
        value = doc.get(name)
        return value if isinstance(value, str) and value else None

    raw_exp = doc.get("exp")
    exp = None
    if (
        isinstance(raw_exp, int | float)
        and not isinstance(raw_exp, bool)
        and math.isfinite(raw_exp)
    ):
        try:
            exp = dt.datetime.fromtimestamp(float(raw_exp), dt.UTC)
        except (OverflowError, OSError, ValueError):
            exp = None
    return UnverifiedClaims(sub=text("sub"), email=text("email"), name=text("name"), exp=exp)


def same_material(a: Session, b: Session) -> bool:
    """Material identity (AUTH-03): same ``session_id`` AND same ``refresh_token``, byte-equal."""
    return a.session_id == b.session_id and a.refresh_token == b.refresh_token


def session_to_json(session: Session) -> dict[str, Any]:
    """The on-disk object: ``schema_version`` plus the fields, unknown fields back at top level."""
    doc: dict[str, Any] = dict(session.extra)
    doc.update(
        schema_version=STORE_SCHEMA_VERSION,
        session_id=session.session_id,
        access_token=session.access_token,
        refresh_token=session.refresh_token,
        access_expires_at=format_time(session.access_expires_at),
        refresh_expires_at=(
            format_time(session.refresh_expires_at) if session.refresh_expires_at else None
        ),
        issued_at=format_time(session.issued_at),
        scope=session.scope,
        token_type=session.token_type,
        subject=session.subject,
        email=session.email,
        id_token=session.id_token,
    )
    return doc


def session_from_json(doc: object, path: str) -> Session:
    """Decode the on-disk object; any defect → ``CorruptSession`` whose reason never quotes data."""
    if not isinstance(doc, dict):
        raise CorruptSession(path, f"top level is a JSON {type(doc).__name__}, not an object")
    version = doc.get("schema_version", STORE_SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CorruptSession(path, "schema_version is not a positive integer")
    # A newer schema is read as long as the fields this version needs are valid.
    newer = ""
    if version > STORE_SCHEMA_VERSION:
        newer = f" (schema_version {version} is newer than {STORE_SCHEMA_VERSION})"
    fields: dict[str, Any] = {}
    for name in _REQUIRED_STR:
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            raise CorruptSession(path, f"required field {name!r} is missing or empty{newer}")
        fields[name] = value
    for name in (*_TIMES, "refresh_expires_at"):
        value = doc.get(name)
        if value is None and name == "refresh_expires_at":
            fields[name] = None
            continue
        if not isinstance(value, str):
            raise CorruptSession(path, f"field {name!r} is missing or not a timestamp{newer}")
        try:
            fields[name] = parse_time(value)
        except ValueError:
            reason = f"field {name!r} is not an ISO-8601 timestamp{newer}"
            raise CorruptSession(path, reason) from None
    for name in _OPTIONAL_STR:
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            raise CorruptSession(path, f"field {name!r} is not a string{newer}")
        if value is not None:
            fields[name] = value
    fields["extra"] = {k: v for k, v in doc.items() if k not in KNOWN_KEYS}
    return Session(**fields)
