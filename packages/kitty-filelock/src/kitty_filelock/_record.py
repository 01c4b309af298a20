"""The lock record: JSON the holder writes INTO the locked file, and its tolerant reader.

The record is diagnostic only - the kernel lock is the truth. Reading it therefore never raises
and never touches the lock: anything unparseable is simply "no record" (``None``).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import os
import socket
import time
from typing import Any, Final

from ._frozen import frozen_dataclass
from ._jsonfile import JsonDecodeProblem, decode_json
from ._proctime import START_TIME_TOLERANCE_S, boot_id, pid_exists, process_start_time
from ._registry import Held, file_key, with_own_fd_or_holder

RECORD_SCHEMA_VERSION: Final = 1
MAX_RECORD_BYTES: Final = 512
MAX_LABEL_CHARS: Final = 64

# Garbage larger than this is not a record; reading stops here so a huge file costs nothing.
_READ_CAP_BYTES: Final = 64 * 1024
# O_NONBLOCK: opening a FIFO planted at the lock path must not hang a reader.
_READ_FLAGS: Final = (
    os.O_RDONLY
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
)


class HolderStatus(enum.StrEnum):
    """What the pid in a record refers to now (``LockRecord.holder_status``)."""

    ALIVE = "alive"
    DEAD = "dead"
    REUSED = "reused"
    UNKNOWN = "unknown"


@frozen_dataclass
class LockRecord:
    """Who holds (or last held) a lock, as written into the lock file."""

    pid: int
    acquired_at: dt.datetime
    schema_version: int = RECORD_SCHEMA_VERSION
    host: str | None = None
    process_started_at: float | None = None
    boot_id: str | None = None
    package_version: str | None = None
    label: str | None = None
    mode: str | None = None
    fs_type: str | None = None
    max_hold_s: float | None = None

    def age_s(self, now: dt.datetime | None = None) -> float:
        """Seconds since ``acquired_at`` by the wall clock, clamped at 0 (diagnostic only)."""
        now = now or dt.datetime.now(dt.UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        return max(0.0, (now - self.acquired_at).total_seconds())

    def holder_status(self) -> HolderStatus:
        """Whether the recorded pid is still the process that wrote this record.

        ``unknown`` when the record comes from another host or boot (its pid means nothing here)
        or when a start time is unavailable; ``dead`` when no such pid exists; ``reused`` when the
        pid now belongs to a process that started at a different time.
        """
        ident = local_identity()
        if self.host is not None and self.host != ident.host:
            return HolderStatus.UNKNOWN
        if self.boot_id is not None and ident.boot_id is not None and self.boot_id != ident.boot_id:
            return HolderStatus.UNKNOWN
        if not pid_exists(self.pid):
            return HolderStatus.DEAD
        started = process_start_time(self.pid)
        if self.process_started_at is None or started is None:
            return HolderStatus.UNKNOWN
        if abs(started - self.process_started_at) <= START_TIME_TOLERANCE_S:
            return HolderStatus.ALIVE
        return HolderStatus.REUSED

    def to_json(self) -> str:
        """The record as kitty writes it (one line, keys in the documented order)."""
        return json.dumps(
            {
                "schema_version": self.schema_version,
                "pid": self.pid,
                "host": self.host,
                "acquired_at": format_utc_ms(self.acquired_at),
                "process_started_at": self.process_started_at,
                "boot_id": self.boot_id,
                "package_version": self.package_version,
                "label": self.label,
                "mode": self.mode,
                "fs_type": self.fs_type,
                "max_hold_s": self.max_hold_s,
            },
            ensure_ascii=False,
        )


def format_utc_ms(when: dt.datetime) -> str:
    """``2025-05-01T10:00:00.123Z``."""
    when = when.astimezone(dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------- identity of this process


@frozen_dataclass
class Identity:
    """Per-process constants that go into every record (computed once per pid)."""

    pid: int
    host: str
    process_started_at: float | None
    boot_id: str | None
    package_version: str


_identity: Identity | None = None


def _package_version() -> str:
    from . import __version__

    return __version__


def local_identity() -> Identity:
    """This process's identity, recomputed only after a fork changes the pid."""
    global _identity
    ident = _identity
    pid = os.getpid()
    if ident is None or ident.pid != pid:
        started = process_start_time(pid)
        ident = Identity(
            pid=pid,
            host=socket.gethostname(),
            process_started_at=None if started is None else round(started, 2),
            boot_id=boot_id(),
            package_version=_package_version(),
        )
        _identity = ident
    return ident


# ---------------------------------------------------------------- fast encoding


class RecordTemplate:
    """Pre-encoded record bytes around the only per-acquisition field, ``acquired_at``.

    Everything else in the record is constant for a (process, lock, filesystem), so acquisition
    costs one timestamp format and two bytes concatenations instead of a ``json.dumps``.
    """

    __slots__ = ("_prefix", "_suffix", "fields", "pid")

    def __init__(
        self,
        ident: Identity,
        *,
        label: str | None,
        mode: str,
        fs_type: str,
        max_hold_s: float | None,
    ) -> None:
        self.pid = ident.pid
        label = None if label is None else label[:MAX_LABEL_CHARS]
        while True:
            self.fields: dict[str, Any] = {
                "schema_version": RECORD_SCHEMA_VERSION,
                "pid": ident.pid,
                "host": ident.host,
                "acquired_at": "",
                "process_started_at": ident.process_started_at,
                "boot_id": ident.boot_id,
                "package_version": ident.package_version,
                "label": label,
                "mode": mode,
                "fs_type": fs_type,
                "max_hold_s": max_hold_s,
            }
            head = {k: self.fields[k] for k in ("schema_version", "pid", "host")}
            tail = {k: v for k, v in self.fields.items() if k not in head and k != "acquired_at"}
            head_json = json.dumps(head, ensure_ascii=False)
            tail_json = json.dumps(tail, ensure_ascii=False)
            self._prefix = (head_json[:-1] + ', "acquired_at": "').encode()
            self._suffix = ('", ' + tail_json[1:]).encode()
            # A record must stay below MAX_RECORD_BYTES; only the label is ours to shorten.
            if len(self._prefix) + len(self._suffix) + 24 < MAX_RECORD_BYTES or not label:
                break
            label = label[: len(label) // 2]

    def encode(self, stamp: str) -> bytes:
        return self._prefix + stamp.encode() + self._suffix

    def record(self, stamp: str) -> LockRecord:
        f = self.fields
        return LockRecord(
            schema_version=f["schema_version"],
            pid=f["pid"],
            host=f["host"],
            acquired_at=_parse_time(stamp) or dt.datetime.now(dt.UTC),
            process_started_at=f["process_started_at"],
            boot_id=f["boot_id"],
            package_version=f["package_version"],
            label=f["label"],
            mode=f["mode"],
            fs_type=f["fs_type"],
            max_hold_s=f["max_hold_s"],
        )


#: Templates already built in this process: a new lock object per use (kitty's own pattern)
#: should not pay the two json.dumps again. Bounded: cleared when it grows past this.
_TEMPLATE_CACHE_MAX: Final = 256
_TEMPLATES: dict[tuple[Any, ...], RecordTemplate] = {}


def record_template(
    ident: Identity, *, label: str | None, mode: str, fs_type: str, max_hold_s: float | None
) -> RecordTemplate:
    """A `RecordTemplate` for these fields, built once per process (Identity is per pid)."""
    key = (ident, label, mode, fs_type, max_hold_s)
    template = _TEMPLATES.get(key)
    if template is None:
        if len(_TEMPLATES) >= _TEMPLATE_CACHE_MAX:
            _TEMPLATES.clear()
        template = _TEMPLATES[key] = RecordTemplate(
            ident, label=label, mode=mode, fs_type=fs_type, max_hold_s=max_hold_s
        )
    return template


_stamp_second = -1
_stamp_prefix = ""


def utc_stamp_now() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (cached per second: it is hot)."""
    global _stamp_second, _stamp_prefix
    now = time.time()
    sec = int(now)
    if sec != _stamp_second:
        _stamp_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _stamp_second = sec
    return _stamp_prefix + _MILLIS[int((now - sec) * 1000)]


# "000Z".."999Z", and 1000 for a float product that rounds up to it: formatting the
# milliseconds is most of the stamp's cost.
_MILLIS: Final = (*(f"{ms:03d}Z" for ms in range(1000)), "999Z")


# ---------------------------------------------------------------- tolerant parsing


def _parse_time(value: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.UTC)  # naive timestamps are UTC by contract
    return parsed.astimezone(dt.UTC)


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def parse_record(raw: bytes) -> LockRecord | None:
    """Parse record bytes; ``None`` for anything that is not a usable record. Never raises.

    Required: ``pid`` (positive int, not bool) and ``acquired_at`` (ISO-8601; naive = UTC).
    ``schema_version``, if present, must be a positive int; a higher version is accepted.
    Optional fields of the wrong type read as ``None``; unknown keys are ignored.
    """
    # Note: bool is an int subclass, and a JSON true is never a pid or a version.
    if not raw or len(raw) > _READ_CAP_BYTES:
        return None
    try:
        data = decode_json(raw)
    except JsonDecodeProblem:
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    stamp = data.get("acquired_at")
    version = data.get("schema_version", RECORD_SCHEMA_VERSION)
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    if not isinstance(stamp, str):
        return None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return None
    acquired_at = _parse_time(stamp)
    if acquired_at is None:
        return None
    label = _opt_str(data.get("label"))
    return LockRecord(
        pid=pid,
        acquired_at=acquired_at,
        schema_version=version,
        host=_opt_str(data.get("host")),
        process_started_at=_opt_float(data.get("process_started_at")),
        boot_id=_opt_str(data.get("boot_id")),
        package_version=_opt_str(data.get("package_version")),
        label=None if label is None else label[:MAX_LABEL_CHARS],
        mode=_opt_str(data.get("mode")),
        fs_type=_opt_str(data.get("fs_type")),
        max_hold_s=_opt_float(data.get("max_hold_s")),
    )


def read_fd(fd: int) -> bytes:
    """Read the whole (capped) record from offset 0 without moving anything else."""
    chunks: list[bytes] = []
    total = 0
    while total <= _READ_CAP_BYTES:
        chunk = os.pread(fd, 4096, total) if hasattr(os, "pread") else _read_at(fd, total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_at(fd: int, offset: int) -> bytes:  # pragma: no cover - Windows has no os.pread
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, 4096)


def read_lock_record(path: str | os.PathLike[str]) -> LockRecord | None:
    """The record currently in the lock file at ``path``, or ``None``.

    Never takes or disturbs the lock (a plain read-only open, no lock call), never creates the
    file and never raises: missing, empty, garbage or unreadable all read as ``None``.
    """
    try:
        key = file_key(os.stat(path))
    except (OSError, ValueError, TypeError):
        return None

    def own() -> bytes | None:
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError:
            return None
        try:
            return read_fd(fd)
        except OSError:
            return None
        finally:
            os.close(fd)

    def from_holder(held: Held) -> bytes | None:
        try:
            return read_fd(held.fd)
        except OSError:  # pragma: no cover - the holder released between check and read
            return None

    raw = with_own_fd_or_holder(key, own, from_holder)
    return None if raw is None else parse_record(raw)
