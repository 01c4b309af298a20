"""Lock records: tolerant reading (LCK-10), helpers (LCK-11), encoding (LCK-06)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kitty_filelock
from kitty_filelock import HolderStatus, LockRecord, process_start_time, read_lock_record
from kitty_filelock import _record as record_module
from kitty_filelock._record import RecordTemplate, local_identity, parse_record, utc_stamp_now

GOOD = {"pid": 4242, "acquired_at": "2025-05-01T10:00:00.123Z"}


def blob(obj: object) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"{not json", "invalid JSON"),
        (b"[1, 2, 3]", "not an object"),
        (b'"just a string"', "not an object"),
        (blob({"acquired_at": GOOD["acquired_at"]}), "missing pid"),
        (blob({"pid": 1}), "missing acquired_at"),
        (blob({**GOOD, "pid": True}), "bool is not an int"),
        (blob({**GOOD, "pid": "4242"}), "pid as string"),
        (blob({**GOOD, "pid": 0}), "pid zero"),
        (blob({**GOOD, "pid": -5}), "negative pid"),
        (blob({**GOOD, "pid": 4.5}), "float pid"),
        (blob({**GOOD, "acquired_at": 1746093600}), "epoch timestamp"),
        (blob({**GOOD, "acquired_at": "yesterday"}), "unparseable timestamp"),
        (blob({**GOOD, "schema_version": "1"}), "string schema version"),
        (blob({**GOOD, "schema_version": False}), "bool schema version"),
        (blob({**GOOD, "schema_version": 0}), "schema version zero"),
        (b"[" * 5000 + b"]" * 5000, "deep nesting"),
        (b" " * (70 * 1024), "oversized"),
    ],
)
def test_garbage_reads_as_none(tmp_path: Path, raw: bytes, why: str) -> None:
    path = tmp_path / "x.lock"
    path.write_bytes(raw)
    assert read_lock_record(path) is None, why


def test_missing_file_and_directory_read_as_none(tmp_path: Path) -> None:
    assert read_lock_record(tmp_path / "nope.lock") is None
    assert read_lock_record(tmp_path) is None  # a directory: OSError on read -> None


def test_reading_never_creates_the_file(tmp_path: Path) -> None:
    read_lock_record(tmp_path / "absent.lock")
    assert not (tmp_path / "absent.lock").exists()


def test_minimal_record_parses_with_defaults() -> None:
    record = parse_record(blob(GOOD))
    assert record is not None
    assert record.pid == 4242
    assert record.schema_version == 1
    assert record.acquired_at == dt.datetime(2025, 5, 1, 10, 0, 0, 123000, tzinfo=dt.UTC)
    assert record.host is None
    assert record.max_hold_s is None


def test_naive_timestamp_is_utc_and_offsets_are_normalised() -> None:
    naive = parse_record(blob({**GOOD, "acquired_at": "2025-05-01T10:00:00"}))
    offset = parse_record(blob({**GOOD, "acquired_at": "2025-05-01T12:00:00+02:00"}))
    assert naive is not None
    assert offset is not None
    assert naive.acquired_at == offset.acquired_at
    assert naive.acquired_at.tzinfo == dt.UTC


def test_unknown_keys_ignored_and_higher_schema_parsed() -> None:
    record = parse_record(blob({**GOOD, "schema_version": 7, "future": {"x": 1}}))
    assert record is not None
    assert record.schema_version == 7


def test_optional_fields_of_the_wrong_type_read_as_none() -> None:
    record = parse_record(
        blob(
            {
                **GOOD,
                "host": 5,
                "process_started_at": "soon",
                "boot_id": [],
                "label": None,
                "max_hold_s": True,
                "mode": 1,
                "fs_type": {},
                "package_version": 0.1,
            }
        )
    )
    assert record is not None
    assert record.host is None
    assert record.process_started_at is None
    assert record.boot_id is None
    assert record.max_hold_s is None
    assert record.mode is None
    assert record.fs_type is None
    assert record.package_version is None
    nan = parse_record(b'{"pid": 1, "acquired_at": "2025-05-01T10:00:00Z", "max_hold_s": NaN}')
    assert nan is not None
    assert nan.max_hold_s is None


def test_full_record_round_trips_through_its_json(tmp_path: Path) -> None:
    record = LockRecord(
        pid=4242,
        acquired_at=dt.datetime(2025, 5, 1, 10, 0, 0, 123000, tzinfo=dt.UTC),
        host="devbox",
        process_started_at=1746093590.41,
        boot_id="0f6c2d1e",
        package_version="0.1.0",
        label="refresh",
        mode="flock",
        fs_type="ext4",
        max_hold_s=10.0,
    )
    text = record.to_json()
    assert '"acquired_at": "2025-05-01T10:00:00.123Z"' in text
    path = tmp_path / "x.lock"
    path.write_text(text)
    assert read_lock_record(path) == record


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    result = parse_record(raw)
    assert result is None or result.pid > 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*GOOD, "schema_version", "host", "label", "max_hold_s", "boot_id"])
        | st.text(max_size=8),
        json_values,
        max_size=8,
    )
)
def test_arbitrary_json_objects_never_raise(obj: dict[str, object]) -> None:
    result = parse_record(json.dumps(obj).encode())
    if result is not None:
        assert isinstance(result.pid, int)
        assert not isinstance(result.pid, bool)
        assert result.acquired_at.tzinfo is not None


def test_age_is_clamped_and_accepts_naive_now() -> None:
    record = parse_record(blob(GOOD))
    assert record is not None
    later = dt.datetime(2025, 5, 1, 10, 0, 10, 123000)
    assert record.age_s(later) == pytest.approx(10.0)
    earlier = dt.datetime(2025, 5, 1, 9, 0, tzinfo=dt.UTC)
    assert record.age_s(earlier) == 0.0
    assert record.age_s() > 0


def _mine(**changes: object) -> LockRecord:
    ident = local_identity()
    base: dict[str, object] = {
        "pid": os.getpid(),
        "acquired_at": dt.datetime.now(dt.UTC),
        "host": ident.host,
        "process_started_at": ident.process_started_at,
        "boot_id": ident.boot_id,
    }
    base.update(changes)
    return LockRecord(**base)  # type: ignore[arg-type]  # test builder over known fields


@pytest.mark.skipif(process_start_time() is None, reason="no start time on this platform")
def test_holder_status_alive_reused_unknown() -> None:
    assert _mine().holder_status() is HolderStatus.ALIVE
    started = local_identity().process_started_at
    assert started is not None
    assert _mine(process_started_at=started - 3600).holder_status() is HolderStatus.REUSED
    assert _mine(process_started_at=None).holder_status() is HolderStatus.UNKNOWN
    assert _mine(host=socket.gethostname() + "-other").holder_status() is HolderStatus.UNKNOWN
    if local_identity().boot_id is not None:
        assert _mine(boot_id="another-boot").holder_status() is HolderStatus.UNKNOWN


def test_holder_status_dead_for_a_reaped_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    assert _mine(pid=child.pid).holder_status() is HolderStatus.DEAD
    assert isinstance(HolderStatus.DEAD, str)  # a str enum: JSON-natural
    assert json.dumps(HolderStatus.DEAD) == '"dead"'


def test_start_time_tolerance_is_one_second() -> None:
    assert kitty_filelock.START_TIME_TOLERANCE_S == 1.0
    assert record_module.MAX_RECORD_BYTES == 512
    assert record_module.RECORD_SCHEMA_VERSION == 1


def test_template_encodes_the_same_record_the_parser_reads() -> None:
    template = RecordTemplate(
        local_identity(), label="spawn:sync", mode="flock", fs_type="ext4", max_hold_s=None
    )
    stamp = utc_stamp_now()
    raw = template.encode(stamp)
    assert parse_record(raw) == template.record(stamp)
    assert json.loads(raw)["acquired_at"] == stamp


def test_template_shortens_labels_until_the_record_fits() -> None:
    ident = local_identity()
    template = RecordTemplate(
        ident, label="\U0001f431" * 64, mode="fcntl", fs_type="nfs4", max_hold_s=1.5
    )
    raw = template.encode(utc_stamp_now())
    assert len(raw) < record_module.MAX_RECORD_BYTES
    parsed = parse_record(raw)
    assert parsed is not None
    assert parsed.label is not None
    assert parsed.label.startswith("\U0001f431")


def test_stamp_format_is_utc_milliseconds() -> None:
    first = utc_stamp_now()
    second = utc_stamp_now()
    for stamp in (first, second):
        parsed = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        assert abs((dt.datetime.now(dt.UTC) - parsed).total_seconds()) < 60


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_at_the_lock_path_reads_as_none_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "x.lock"
    os.mkfifo(fifo)
    assert read_lock_record(fifo) is None
