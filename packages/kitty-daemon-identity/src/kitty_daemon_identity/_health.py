"""The health payload (schema v2, DID-07..DID-09): one flat JSON object, nothing secret in it."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Final, cast

from kitty_filelock import frozen_dataclass, frozen_field, frozen_field_names

from ._constants import HEALTH_MAX_BYTES, HEALTH_SCHEMA_VERSION
from ._jsonio import DuplicateKeyError, loads_strict

__all__ = ["HEALTH_KEYS", "HealthParseError", "HealthPayload", "check_extra", "parse_health"]

_MAX_STRING_CHARS: Final = 4096
_MAX_PACKAGE_VERSION_CHARS: Final = 64
_INSTANCE_ID: Final = re.compile(r"[0-9a-f]{32}")
_STATUSES: Final = frozenset({"ok", "stopping"})
# An app's extra health fields (Family.health_fields): a few small scalars under "extra".
_EXTRA_KEY: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")
_EXTRA_MAX_FIELDS: Final = 16
_EXTRA_MAX_CHARS: Final = 256

HealthExtra = Mapping[str, str | int | float | bool | None]


def check_extra(extra: object) -> str | None:
    """None if ``extra`` is a valid extra-fields object, else why not (one short phrase).

    At most 16 snake_case names, each a string (<= 256 characters), a finite number, a bool or
    null: small, flat evidence an app's daemon adds to its health; never a secret.
    """
    if not isinstance(extra, Mapping):
        return "not an object"
    if len(extra) > _EXTRA_MAX_FIELDS:
        return f"more than {_EXTRA_MAX_FIELDS} fields"
    for key, value in extra.items():
        if not isinstance(key, str) or not _EXTRA_KEY.fullmatch(key):
            return f"field name {key!r} is not snake_case"
        if isinstance(value, str):
            if len(value) > _EXTRA_MAX_CHARS:
                return f"field {key!r} is longer than {_EXTRA_MAX_CHARS} characters"
        elif isinstance(value, float):
            if not math.isfinite(value):
                return f"field {key!r} is not a finite number"
        elif value is not None and not isinstance(value, bool | int):
            return f"field {key!r} is not a string, number, bool or null"
    return None


@frozen_dataclass
class HealthPayload:
    """What ``GET /api/health`` returns. Field names are the JSON keys (one flat object)."""

    schema_version: int
    status: str
    daemon_family: str
    protocol_version: int
    package_version: str
    singleton_scope_id: str
    daemon_root: str
    pid: int
    port: int
    process_started_at: float
    started_at: str
    busy: bool
    idle_s: float
    instance_id: str
    #: The app's extra fields (its family's ``health_fields``); absent from the JSON when empty.
    extra: HealthExtra = frozen_field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in frozen_field_names(self)}
        if self.extra:
            out["extra"] = dict(self.extra)
        else:
            del out["extra"]
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()


#: The keys every payload carries (``extra`` is optional and not among them).
HEALTH_KEYS: Final[frozenset[str]] = frozenset(frozen_field_names(HealthPayload)) - {"extra"}


@frozen_dataclass
class HealthParseError:
    """Why a health body is not a valid payload (a value, not an exception: parsing never raises).

    ``reason`` is one of ``too_large``, ``not_utf8``, ``invalid_json``, ``duplicate_key``,
    ``not_object``, ``missing_field:<k>``, ``bad_type:<k>``, ``bad_value:<k>``. ``looks_kitty``
    is True when the object has both ``daemon_family`` and ``protocol_version`` (a kitty daemon
    of another schema); ``daemon_family`` is the raw claimed family when it is a string.
    """

    reason: str
    looks_kitty: bool = False
    daemon_family: str | None = None


def _is_int(value: object) -> bool:
    # bool is an int subclass in Python but never a valid integer field on the wire.
    return isinstance(value, int) and not isinstance(value, bool)


def _absolute_path(value: str) -> bool:
    return PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()


def _utc_iso(value: str) -> bool:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is None or parsed.utcoffset() == dt.timedelta(0)


def _check(key: str, value: Any) -> str | None:
    """Return ``bad_type:<k>`` / ``bad_value:<k>`` for a present value, or None if valid."""
    if key in {"schema_version", "protocol_version", "pid", "port"}:
        if not _is_int(value):
            return f"bad_type:{key}"
        ok = {
            "schema_version": value == HEALTH_SCHEMA_VERSION,
            "protocol_version": value >= 1,
            "pid": value > 0,
            "port": 1 <= value <= 65535,
        }[key]
        return None if ok else f"bad_value:{key}"
    if key in {"process_started_at", "idle_s"}:
        if not (_is_int(value) or isinstance(value, float)):
            return f"bad_type:{key}"
        try:
            number = float(value)
        except OverflowError:
            # JSON integers have no size limit; one past float range is a bad value, not a crash.
            return f"bad_value:{key}"
        ok = math.isfinite(number) and (number > 0 if key == "process_started_at" else number >= 0)
        return None if ok else f"bad_value:{key}"
    if key == "busy":
        return None if isinstance(value, bool) else f"bad_type:{key}"
    # Every remaining field is a string.
    if not isinstance(value, str):
        return f"bad_type:{key}"
    if len(value) > _MAX_STRING_CHARS:
        return f"bad_value:{key}"
    ok = {
        "status": value in _STATUSES,
        "daemon_family": bool(value),
        "package_version": 0 < len(value) <= _MAX_PACKAGE_VERSION_CHARS,
        "singleton_scope_id": bool(value),
        "daemon_root": _absolute_path(value),
        "started_at": _utc_iso(value),
        "instance_id": _INSTANCE_ID.fullmatch(value) is not None,
    }[key]
    return None if ok else f"bad_value:{key}"


_FIELD_ORDER: Final = tuple(
    name for name in frozen_field_names(HealthPayload) if name in HEALTH_KEYS
)


def _from_object(obj: Mapping[str, Any]) -> HealthPayload | HealthParseError:
    looks_kitty = "daemon_family" in obj and "protocol_version" in obj
    raw_family = obj.get("daemon_family")
    family = raw_family if isinstance(raw_family, str) else None
    for key in _FIELD_ORDER:
        if key not in obj:
            return HealthParseError(f"missing_field:{key}", looks_kitty, family)
        problem = _check(key, obj[key])
        if problem is not None:
            return HealthParseError(problem, looks_kitty, family)
    values = {key: obj[key] for key in _FIELD_ORDER}
    values["process_started_at"] = float(values["process_started_at"])
    values["idle_s"] = float(values["idle_s"])
    # A malformed "extra" is ignored like any unknown key: evidence only, never a reason to
    # call a live daemon's health invalid.
    if "extra" in obj and check_extra(obj["extra"]) is None:
        values["extra"] = dict(obj["extra"])
    return HealthPayload(**values)


def parse_health(body: bytes | bytearray | memoryview) -> HealthPayload | HealthParseError:
    """Parse a health body; NEVER raises, whatever the bytes (DID-09). Unknown keys are ignored."""
    if not isinstance(cast(object, body), bytes | bytearray | memoryview):
        return HealthParseError("not_utf8")  # not a byte string at all: nothing to decode
    data = bytes(body)
    if len(data) > HEALTH_MAX_BYTES:
        return HealthParseError("too_large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return HealthParseError("not_utf8")
    try:
        obj = loads_strict(text)
    except DuplicateKeyError:
        return HealthParseError("duplicate_key")
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON, NaN/Infinity and integers too long to convert.
        return HealthParseError("invalid_json")
    if not isinstance(obj, dict):
        return HealthParseError("not_object")
    return _from_object(obj)
