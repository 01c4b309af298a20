"""A token endpoint's 200 answer → session fields: ONE reading for the login and every refresh.

``token_fields`` holds the rules (expiry from the send time minus a whole-second allowance, the
refresh token kept when a non-rotating server omits it, the refresh token's own end of life, the
optional string fields); ``TokenEndpoint.refresh`` applies them to the session it refreshed and
``session_from_token_response`` to a first login, so the two can never drift apart.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TypeGuard

from kitty_filelock import frozen_replace

from ._clock import SYSTEM_CLOCK, Clock
from ._errors import RefreshProtocolError
from ._session import Session, as_utc, parse_time

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("kitty_auth_refresh")

DEFAULT_ACCESS_TTL_S: Final = 300
# Whole seconds taken off every lifetime: the server started its clock before our request left.
EXPIRY_ALLOWANCE_S: Final = 1
_OPTIONAL_FIELDS: Final = ("session_id", "scope", "token_type", "subject", "email", "id_token")


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The response body as a JSON object, or None when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def token_fields(body: Mapping[str, Any], sent: dt.datetime) -> dict[str, Any]:
    """The ``Session`` fields a successful token response sets; ``sent`` is when the request left.

    Absent optional fields are absent here too, so a refresh keeps what the session had (its
    refresh token on a non-rotating server, its scope, its unknown ``extra`` fields).
    """
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise RefreshProtocolError(200, "the 200 response has no access_token string")
    expires_in = body.get("expires_in")
    if expires_in is None:
        logger.warning("token response has no expires_in; assuming %d s", DEFAULT_ACCESS_TTL_S)
        expires_in = DEFAULT_ACCESS_TTL_S
    if not is_number(expires_in):
        raise RefreshProtocolError(200, "expires_in is not a number")
    fields: dict[str, Any] = {
        "access_token": access,
        "issued_at": sent,
        # Send time + lifetime - allowance: immune to a skewed clock, and never later than
        # the server's own expiry (it started counting after our request left).
        "access_expires_at": sent + dt.timedelta(seconds=float(expires_in) - EXPIRY_ALLOWANCE_S),
    }
    refresh = body.get("refresh_token")
    if isinstance(refresh, str) and refresh:
        fields["refresh_token"] = refresh  # a non-rotating server omits it: keep ours
    refresh_at = body.get("refresh_token_expires_at")
    refresh_in = body.get("refresh_token_expires_in")
    if isinstance(refresh_at, str):
        try:
            fields["refresh_expires_at"] = parse_time(refresh_at)
        except ValueError:
            raise RefreshProtocolError(200, "refresh_token_expires_at is not ISO-8601") from None
    elif is_number(refresh_at):
        try:
            fields["refresh_expires_at"] = dt.datetime.fromtimestamp(float(refresh_at), dt.UTC)
        except (OverflowError, OSError, ValueError):
            reason = "refresh_token_expires_at is out of range"
            raise RefreshProtocolError(200, reason) from None
    elif is_number(refresh_in):
        fields["refresh_expires_at"] = sent + dt.timedelta(seconds=float(refresh_in))
    for name in _OPTIONAL_FIELDS:
        value = body.get(name)
        if isinstance(value, str) and value:
            fields[name] = value
    return fields


def refreshed_session(old: Session, body: Mapping[str, Any], sent: dt.datetime) -> Session:
    """The session after a successful refresh of ``old`` (the refresh path's use of the rules)."""
    return frozen_replace(old, **token_fields(body, sent))


def session_from_token_response(
    response: Mapping[str, Any] | httpx.Response,
    *,
    sent_at: dt.datetime | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Session:
    """A new ``Session`` from the token endpoint's answer to a login (any grant: authorization
    code, device code, password ...), read by exactly the rules a refresh uses.

    ``response`` is the parsed JSON object or the ``httpx.Response`` itself (which must be a
    200 whose body is a JSON object). Expiry counts from ``sent_at``, when the token request
    left; without it, from the moment the response arrived (``clock.now()`` minus the
    response's ``elapsed`` when it has one), so pass ``sent_at`` when you have it. The
    session id is the server's ``session_id`` when it sends one, else a fresh random id.

    Raises ``RefreshProtocolError`` (never quoting a token) for a non-200 answer, a body that is
    not a JSON object, a missing access token, a missing refresh token (the session could never
    be refreshed: ask for offline access), or a malformed lifetime.
    """
    if isinstance(response, Mapping):
        body: Mapping[str, Any] = response
        received = as_utc(clock.now())
    else:
        received = as_utc(clock.now()) - _elapsed(response)
        status = response.status_code
        found = json_object(response)
        if status != 200:
            error = found.get("error") if found is not None else None
            shown = error if isinstance(error, str) and error.isidentifier() else None
            raise RefreshProtocolError(status, shown or "the token response is not a success")
        if found is None:
            raise RefreshProtocolError(status, "the 200 response is not a JSON object")
        body = found
    sent = as_utc(sent_at) if sent_at is not None else received
    fields = token_fields(body, sent)
    if "refresh_token" not in fields:
        reason = "the token response has no refresh_token: request offline access"
        raise RefreshProtocolError(200, reason)
    # A random id when the server names none: it only has to tell this login from the next.
    fields.setdefault("session_id", secrets.token_urlsafe(16))
    return Session(**fields)


def _elapsed(response: httpx.Response) -> dt.timedelta:
    """How long the response took (httpx knows once it is closed); zero when it cannot say."""
    try:
        return response.elapsed
    except RuntimeError:  # a response built by hand, or still streaming: no measurement
        return dt.timedelta(0)
