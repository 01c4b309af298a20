"""The family state record and the scope key file (DID-10, DID-11).

Both live in the daemon root. Writers are atomic and private from creation; readers are lenient
(anything unreadable is "absent") and never modify what they cannot parse.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, Final

from kitty_filelock import frozen_dataclass, read_json_file, read_small_file, write_private_file

from ._constants import STATE_SCHEMA_VERSION
from ._errors import KittyDaemonError
from ._family import DaemonFamily, scope_key_path
from ._health import HealthPayload
from ._jsonio import loads_strict
from ._profile import Family, as_family, valid_family_name

__all__ = [
    "OtherRoot",
    "StateRecord",
    "ensure_scope_key",
    "load_other_root",
    "read_scope_key",
    "read_state",
    "write_state",
]

_SCOPE_KEY_RE: Final = re.compile(r"[0-9a-f]{64}")
_STATE_MAX_BYTES: Final = 65536
# A concurrent creator may have the file open but not yet written; how long a reader waits.
_KEY_SETTLE_ATTEMPTS: Final = 100
_KEY_SETTLE_SLEEP_S: Final = 0.01


@frozen_dataclass
class StateRecord:
    """The recorded singleton of one family in one daemon root (``state.json``).

    ``family`` is the family's name (kitty's are the ``DaemonFamily`` strings).
    """

    family: str
    pid: int
    port: int
    process_started_at: float
    package_version: str
    protocol_version: int
    started_at: str
    instance_id: str
    scope_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": STATE_SCHEMA_VERSION,
            "family": str(self.family),
            "pid": self.pid,
            "port": self.port,
            "process_started_at": self.process_started_at,
            "package_version": self.package_version,
            "protocol_version": self.protocol_version,
            "started_at": self.started_at,
            "instance_id": self.instance_id,
            "scope_id": self.scope_id,
        }

    @classmethod
    def from_health(cls, payload: HealthPayload) -> StateRecord:
        """The record of the daemon that served ``payload`` (its self-report, as the spawner
        records it once the process behind the port is proven to be its child)."""
        return cls(
            family=payload.daemon_family,
            pid=payload.pid,
            port=payload.port,
            process_started_at=payload.process_started_at,
            package_version=payload.package_version,
            protocol_version=payload.protocol_version,
            started_at=payload.started_at,
            instance_id=payload.instance_id,
            scope_id=payload.singleton_scope_id,
        )

    @classmethod
    def from_dict(cls, data: object) -> StateRecord | None:
        """Build a record from decoded JSON; None if any required field is missing or mistyped."""
        if not isinstance(data, dict):
            return None
        schema = _int(data.get("schema_version"))
        pid, port = _int(data.get("pid")), _int(data.get("port"))
        protocol = _int(data.get("protocol_version"))
        started = data.get("process_started_at")
        raw_family = data.get("family")
        if schema is None or schema < 1 or not valid_family_name(raw_family):
            return None
        family = str(raw_family)
        if pid is None or pid <= 0 or port is None or not 1 <= port <= 65535:
            return None
        if isinstance(started, bool) or not isinstance(started, int | float):
            return None
        try:
            started = float(started)
        except OverflowError:  # a JSON integer past float range: garbage, and never a raise
            return None
        if not math.isfinite(started) or started <= 0 or protocol is None or protocol < 1:
            return None
        strings = {
            k: data.get(k) for k in ("package_version", "started_at", "instance_id", "scope_id")
        }
        if not all(isinstance(v, str) for v in strings.values()):
            return None
        return cls(
            family=family,
            pid=pid,
            port=port,
            process_started_at=started,
            protocol_version=protocol,
            **strings,  # type: ignore[arg-type]  # every value checked to be str just above
        )


def _int(value: object) -> int | None:
    """``value`` if it is a JSON integer (a bool is not), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def write_state(root: Path, record: StateRecord, family: Family | None = None) -> Path:
    """Atomically write ``record`` to its family's state file in ``root``; return the path.

    kitty-filelock's private writer: the root is created 0700 if missing and refused
    (``UnsafeDirectoryError``) if it exists writable by group/others or owned by another user;
    a 0600 temp file is fsynced, then ``os.replace``d over the target, so a reader sees either
    the old record or the new one, never a torn one, and a symlink planted at the path is
    replaced, never written through. Only ``ensure_daemon`` (under the family's spawn lock)
    calls this; a daemon never writes its own record. ``family`` (the bound family the record
    is of) names the file; without it, ``record.family`` is one of kitty's families.
    """
    if StateRecord.from_dict(record.to_dict()) is None:
        # Never persist what every reader would reject as garbage (and then ignore silently).
        raise ValueError(
            f"refusing to write an invalid state record {record!r}: pid and port must be "
            "positive (port <= 65535), process_started_at a finite number > 0, "
            "protocol_version >= 1, and the text fields strings"
        )
    fam = as_family(family if family is not None else record.family)
    if fam.name != record.family:
        raise ValueError(f"record of family {record.family!r} given for family {fam.name!r}")
    target = fam.state_path(Path(root))
    data = json.dumps(record.to_dict(), separators=(",", ":"), allow_nan=False).encode()
    write_private_file(target, data)
    return target


@frozen_dataclass
class OtherRoot:
    """What is on disk at a daemon root a listener's root marker names (not the caller's own).

    ``exists`` False means the directory is gone (the listener outlived its home); ``state`` is
    that root's family state record (None if missing or unreadable).
    """

    root: str
    exists: bool
    state: StateRecord | None


def load_other_root(root: Path | str, family: Family | str = DaemonFamily.SYNC) -> OtherRoot:
    """Gather ``OtherRoot`` for ``classify`` (the I/O side); never raises."""
    try:
        exists = Path(root).is_dir()
    except (OSError, ValueError):
        exists = False
    return OtherRoot(str(root), exists, read_state(Path(root), family) if exists else None)


def read_state(root: Path, family: Family | str = DaemonFamily.SYNC) -> StateRecord | None:
    """The family's state record, or None if missing, unreadable, garbage or of another family.

    Never raises and never modifies the file.
    """
    fam = as_family(family)
    try:
        # kitty-filelock's reader: a FIFO or symlink in place of the record reads as garbage and
        # never blocks the caller (ensure_daemon reads it while holding the spawn lock).
        doc = read_json_file(
            fam.state_path(Path(root)), max_bytes=_STATE_MAX_BYTES, loads=loads_strict
        )
        record = StateRecord.from_dict(doc)
    except (OSError, ValueError, TypeError):
        return None
    if record is None or record.family != fam.name:
        return None
    return record


def read_scope_key(root: Path) -> str | None:
    """The scope key, or None if missing, unreadable, malformed, group/other-accessible or not
    owned by the current user. Never raises.

    kitty-filelock's reader: a symlink is not followed and a FIFO planted there cannot hang a
    sweep (which reads the key of another daemon root for a forced cross-root target).
    """
    try:
        raw = read_small_file(
            scope_key_path(Path(root)), max_bytes=256, owner_only=True, private_only=True
        )
    except (OSError, ValueError):
        return None
    text = raw.decode("ascii", "replace").strip()
    return text if _SCOPE_KEY_RE.fullmatch(text) else None


def ensure_scope_key(root: Path) -> str:
    """Create ``<root>/scope.key`` (``O_CREAT|O_EXCL``, 0600, 64 hex) or read the existing one.

    The file is never rewritten: daemons re-read it per shutdown request, so replacing it would
    lock out whoever holds the old key. Raises ``KittyDaemonError`` naming the path if an existing
    key is unusable (wrong owner, group/other-accessible, malformed).
    """
    root = Path(root)
    path = scope_key_path(root)
    # secrets is imported only where a key is made: it costs ~8 ms, which a reader never needs.
    import secrets

    key = secrets.token_hex(32)
    try:
        # Published by a hard link from a complete temp file: never rewritten, never torn; the
        # root is created 0700 or refused if another user could write (or owns) it.
        write_private_file(path, key.encode("ascii"), exclusive=True)
    except FileExistsError:
        pass
    else:
        return key
    # Another process created it first; a writer older than issue 12 wrote it in place, so its
    # write may still be in flight (bounded wait).
    for _ in range(_KEY_SETTLE_ATTEMPTS):
        try:
            complete = path.stat().st_size >= 64  # checked BEFORE reading: no torn verdict
        except OSError:
            complete = False
        existing = read_scope_key(root)
        if existing is not None:
            return existing
        if complete:
            break  # fully written yet unusable: waiting will not help
        time.sleep(_KEY_SETTLE_SLEEP_S)
    raise KittyDaemonError(
        f"scope key {path} exists but is unusable (it must be a regular file owned by you, "
        f"mode 0600, holding 64 hex characters); remove it and retry to create a fresh one"
    )
