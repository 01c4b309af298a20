"""Health payload schema v2 and the never-raising parser (DID-07, DID-09)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kitty_daemon_identity import (
    HEALTH_KEYS,
    HEALTH_MAX_BYTES,
    HealthParseError,
    HealthPayload,
    parse_health,
)

VALID: dict[str, Any] = {
    "schema_version": 2,
    "status": "ok",
    "daemon_family": "sync",
    "protocol_version": 1,
    "package_version": "0.4.0",
    "singleton_scope_id": "/home/u/.kitty/daemon#3b9f0c7a5d12e4f8",
    "daemon_root": "/home/u/.kitty/daemon",
    "pid": 5150,
    "port": 9401,
    "process_started_at": 1746093600.52,
    "started_at": "2025-05-01T10:00:01Z",
    "busy": False,
    "idle_s": 42.0,
    "instance_id": "6f1d9c0e2b7a4c58a9e3d1f0b2c4a6e8",
}


def body(**changes: Any) -> bytes:
    data = {**VALID, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not _DROP}).encode()


_DROP = object()


def test_spec_example_round_trips() -> None:
    parsed = parse_health(body())
    assert isinstance(parsed, HealthPayload)
    assert parsed.to_dict() == VALID
    assert parse_health(parsed.to_json()) == parsed
    assert set(parsed.to_dict()) == HEALTH_KEYS == set(VALID)


def test_unknown_keys_are_ignored_and_ints_accepted_for_floats() -> None:
    parsed = parse_health(body(extra={"nested": [1, 2]}, idle_s=0, process_started_at=17))
    assert isinstance(parsed, HealthPayload)
    assert parsed.idle_s == 0.0
    assert isinstance(parsed.idle_s, float)
    assert parsed.process_started_at == 17.0


def test_windows_root_is_absolute_too() -> None:
    assert isinstance(parse_health(body(daemon_root="C:\\Users\\u\\kitty\\daemon")), HealthPayload)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"x" * (HEALTH_MAX_BYTES + 1), "too_large"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"{", "invalid_json"),
        (b"", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": Infinity}', "invalid_json"),
        (b'{"a": -Infinity}', "invalid_json"),
        (b"[" * 30_000 + b"]" * 30_000, "invalid_json"),  # recursion, within 64 KiB
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "invalid_json"),
        (b'{"a": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b'{"a": {"b": 1, "b": 1}}', "duplicate_key"),
        (b"[]", "not_object"),
        (b'"ok"', "not_object"),
        (b"null", "not_object"),
    ],
)
def test_rejections(raw: bytes, reason: str) -> None:
    result = parse_health(raw)
    assert isinstance(result, HealthParseError)
    assert result.reason == reason


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pid": _DROP}, "missing_field:pid"),
        ({"instance_id": _DROP}, "missing_field:instance_id"),
        ({"schema_version": True}, "bad_type:schema_version"),
        ({"schema_version": 1}, "bad_value:schema_version"),
        ({"status": 1}, "bad_type:status"),
        ({"status": "dead"}, "bad_value:status"),
        ({"daemon_family": None}, "bad_type:daemon_family"),
        ({"daemon_family": ""}, "bad_value:daemon_family"),
        ({"protocol_version": 0}, "bad_value:protocol_version"),
        ({"protocol_version": 1.0}, "bad_type:protocol_version"),
        ({"package_version": "v" * 65}, "bad_value:package_version"),
        ({"singleton_scope_id": "x" * 4097}, "bad_value:singleton_scope_id"),
        ({"daemon_root": "relative/dir"}, "bad_value:daemon_root"),
        ({"pid": True}, "bad_type:pid"),
        ({"pid": 0}, "bad_value:pid"),
        ({"pid": "5150"}, "bad_type:pid"),
        ({"port": 0}, "bad_value:port"),
        ({"port": 65536}, "bad_value:port"),
        ({"process_started_at": 0}, "bad_value:process_started_at"),
        ({"process_started_at": "1"}, "bad_type:process_started_at"),
        ({"process_started_at": False}, "bad_type:process_started_at"),
        ({"started_at": "yesterday"}, "bad_value:started_at"),
        ({"started_at": "2025-05-01T10:00:01+02:00"}, "bad_value:started_at"),
        ({"busy": 0}, "bad_type:busy"),
        ({"idle_s": -0.5}, "bad_value:idle_s"),
        # JSON integers are unbounded: past float range they are bad values, never OverflowError
        ({"process_started_at": 10**400}, "bad_value:process_started_at"),
        ({"idle_s": 10**400}, "bad_value:idle_s"),
        ({"instance_id": "6F1D9C0E2B7A4C58A9E3D1F0B2C4A6E8"}, "bad_value:instance_id"),
        ({"instance_id": "short"}, "bad_value:instance_id"),
    ],
)
def test_field_errors_name_the_field(changes: dict[str, Any], reason: str) -> None:
    result = parse_health(body(**changes))
    assert isinstance(result, HealthParseError)
    assert result.reason == reason
    assert result.looks_kitty is True  # daemon_family and protocol_version keys are present
    expected_family = changes.get("daemon_family", "sync")
    assert result.daemon_family == (expected_family if isinstance(expected_family, str) else None)


def test_looks_kitty_needs_family_and_protocol_keys() -> None:
    only_family = parse_health(json.dumps({"daemon_family": "dashboard"}).encode())
    assert only_family == HealthParseError("missing_field:schema_version", False, "dashboard")
    other_schema = parse_health(
        json.dumps({"daemon_family": "dashboard", "protocol_version": 7}).encode()
    )
    assert isinstance(other_schema, HealthParseError)
    assert other_schema.looks_kitty
    assert other_schema.daemon_family == "dashboard"


def test_bytearray_and_memoryview_are_accepted() -> None:
    assert isinstance(parse_health(bytearray(body())), HealthPayload)
    assert isinstance(parse_health(memoryview(body())), HealthPayload)
    assert parse_health(123) == HealthParseError("not_utf8")  # type: ignore[arg-type]  # hostile caller


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = parse_health(raw)
    assert isinstance(result, HealthPayload | HealthParseError)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**308, max_value=10**400)  # beyond float range
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(VALID)), json_values, max_size=14),
    st.sets(st.sampled_from(sorted(VALID)), max_size=3),
)
def test_near_valid_json_never_raises_and_is_consistent(
    overrides: dict[str, Any], drops: set[str]
) -> None:
    data = {**VALID, **overrides}
    for key in drops:
        data.pop(key, None)
    result = parse_health(json.dumps(data).encode())
    if isinstance(result, HealthPayload):
        # accepted means every DID-07 field is present and re-serialises to an equal payload
        assert parse_health(result.to_json()) == result
        assert not drops
    else:
        assert result.reason.split(":", 1)[0] in {"missing_field", "bad_type", "bad_value"}
        assert result.looks_kitty == ("daemon_family" in data and "protocol_version" in data)
