"""Section collectors: read the machine (files, lock probe, loopback health, scan) into facts.

Every collector is read-only and offline (DOC-01): no writes, no signals, no lock held (only the
filelock probe's momentary one), TCP only to 127.0.0.1 inside the selected families' ranges.
Library imports are local so that a section only pays for what it uses (DOC-13) and so that a
missing or broken library crashes its own section, not the whole report (DOC-02).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import stat
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ._config import Config
from ._model import (
    DaemonFacts,
    DaemonsFacts,
    DaemonStatus,
    IdentityFacts,
    JsonObject,
    LockFacts,
    LockHolder,
    LockRecordFacts,
    OrphansFacts,
    RecordedDaemon,
    ScopeKeyFacts,
    StorageFacts,
    TokenFacts,
)
from ._redact import Redactor

_CMDLINE_MAX_CHARS: Final = 120


def _utc_iso(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value)


def enum_value(value: object) -> str:
    raw = getattr(value, "value", value)
    return str(raw)


# -- Identity, Tokens, Storage ------------------------------------------------------------------


def unreadable_reason(exc: OSError) -> str:
    """Why the session file could not be opened (errno text only: never content)."""
    return exc.strerror or type(exc).__name__


def collect_identity(cfg: Config) -> IdentityFacts:
    from kitty_auth_refresh import SessionStore, auth_status

    try:
        status = auth_status(SessionStore(cfg.auth_dir))
    except OSError:
        # EACCES (a session written by `sudo <app> login`), ELOOP, ENOTDIR: the store lets
        # these through; they are a finding about the file (KD102), not a crash of this section.
        return IdentityFacts(state="unreadable", subject=None, email=None, session_hash=None)
    return IdentityFacts(
        state=enum_value(status.state),
        subject=status.subject,
        email=status.email,
        session_hash=status.session_hash,
    )


def collect_tokens(cfg: Config, redactor: Redactor, now: dt.datetime) -> TokenFacts:
    from kitty_auth_refresh import CorruptSession, SessionStore

    try:
        session = SessionStore(cfg.auth_dir).read()
    except (CorruptSession, OSError):  # the Storage section says why
        session = None
    if session is None:
        return TokenFacts(False, None, None, None, None, None)
    # The tokens are read only so they can be masked if anything ever echoes them (DOC-11).
    redactor.add(session.access_token, session.refresh_token)
    refresh_at = session.refresh_expires_at
    return TokenFacts(
        present=True,
        access_expires_in_s=(session.access_expires_at - now).total_seconds(),
        refresh_expires_in_s=None if refresh_at is None else (refresh_at - now).total_seconds(),
        issued_at=_utc_iso(session.issued_at),
        scope=session.scope,
        token_type=session.token_type,
    )


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _perm(st: os.stat_result | None) -> int | None:
    return None if st is None else stat.S_IMODE(st.st_mode)


def _owner_ok(st: os.stat_result) -> bool | None:
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # pragma: no cover - Windows: ownership is the profile ACL's business
        return None
    return bool(st.st_uid == getuid())


def collect_storage(cfg: Config) -> StorageFacts:
    from kitty_auth_refresh import CorruptSession, SessionStore

    path = cfg.session_path
    st = _lstat(path)
    parse, reason, denied = "missing", None, False
    try:
        # Read even when stat failed: only FileNotFoundError means "missing" (read() -> None);
        # a stat that fails for any other reason (ELOOP, EACCES on a parent) is not "no session".
        parse = "ok" if SessionStore(cfg.auth_dir).read() is not None else "missing"
    except CorruptSession as exc:
        parse, reason = "corrupt", str(getattr(exc, "reason", "") or exc)
    except OSError as exc:
        parse, reason = "unreadable", unreadable_reason(exc)
        denied = isinstance(exc, PermissionError)
    return StorageFacts(
        path=str(path),
        exists=st is not None or parse != "missing",
        size=None if st is None else st.st_size,
        mode=_perm(st),
        owner_ok=None if st is None else _owner_ok(st),
        dir_path=str(cfg.auth_dir),
        dir_mode=_perm(_lstat(cfg.auth_dir)),
        home_path=str(cfg.home),
        home_mode=_perm(_lstat(cfg.home)),
        parse=parse,
        corrupt_reason=reason,
        permission_denied=denied,
    )


# -- Refresh lock -------------------------------------------------------------------------------


def short_cmdline(argv: Sequence[str]) -> str | None:
    """One line, single spaces, at most 120 characters: argv elements may hold newlines
    (python -c scripts) and a daemon's markers make its argv long."""
    text = " ".join(" ".join(argv).split())
    if len(text) > _CMDLINE_MAX_CHARS:
        text = text[: _CMDLINE_MAX_CHARS - 3] + "..."
    return text or None


def process_cmdline(pid: int) -> str | None:
    """A short command line for a pid (Linux /proc; elsewhere unknown). Read-only, no signal."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return short_cmdline(raw.decode("utf-8", "replace").split("\0"))


def lock_holders(pr: Any) -> tuple[LockHolder, ...]:
    """Who holds the lock now, from a `LockProbe`: the OS's list of every pid sharing the locked
    descriptor, else the pid that took it if it is still alive; never a dead pid."""
    from kitty_filelock import process_start_time

    pids: tuple[int, ...] = tuple(pr.holder_pids)
    if not pids and pr.held and pr.holder_pid is not None:
        alive = process_start_time(pr.holder_pid) is not None
        pids = (pr.holder_pid,) if alive else ()
    return tuple(LockHolder(pid, process_cmdline(pid)) for pid in pids)


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        with contextlib.suppress(PermissionError):  # inside a directory that shuts us out
            if candidate.exists():
                return candidate
    return path  # pragma: no cover - the filesystem root always exists


def _unprobed_lock(cfg: Config, this_host: str, unreadable: str | None) -> LockFacts:
    """What the filesystem alone says: the lock file is missing (probing would create it), or
    its directory shuts us out (then whether it is held is unknown)."""
    from kitty_filelock import detect_filesystem

    fs = detect_filesystem(_existing_ancestor(cfg.lock_path))
    return LockFacts(
        path=str(cfg.lock_path),
        exists=unreadable is not None,
        held=None if unreadable is not None else False,
        holder_pid=None,
        holder_source=None,
        holder_cmdline=None,
        record=None,
        stale_record=False,
        mode=fs.mode,
        fs_type=fs.fs_type,
        network_fs=bool(fs.network),
        this_host=this_host,
        stuck_threshold_s=cfg.stuck_threshold_s,
        unreadable=unreadable,
    )


def collect_lock(cfg: Config, now: dt.datetime) -> LockFacts:
    from kitty_filelock import probe

    path = cfg.lock_path
    this_host = socket.gethostname()
    try:
        pr = probe(path) if path.exists() else None
    except PermissionError as exc:
        # The auth directory shuts us out (mode 0000, another user's): a fact about the
        # directory (KD105/KD106 say what to do), not a crash of this section.
        return _unprobed_lock(cfg, this_host, unreadable_reason(exc))
    if pr is None:
        return _unprobed_lock(cfg, this_host, None)
    rec = pr.record
    record = None
    if rec is not None:
        record = LockRecordFacts(
            pid=rec.pid,
            host=rec.host,
            acquired_at=_utc_iso(rec.acquired_at),
            age_s=rec.age_s(now),
            label=rec.label,
            max_hold_s=rec.max_hold_s,
        )
    return LockFacts(
        path=str(path),
        exists=True,
        held=pr.held,
        holder_pid=pr.holder_pid,
        holder_source=None if pr.holder_source is None else enum_value(pr.holder_source),
        holder_cmdline=None if pr.holder_pid is None else process_cmdline(pr.holder_pid),
        holders=lock_holders(pr),
        record=record,
        stale_record=bool(pr.stale_record),
        mode=None if pr.mode is None else enum_value(pr.mode),
        fs_type=pr.fs_type,
        network_fs=bool(pr.network_fs),
        this_host=this_host,
        stuck_threshold_s=cfg.stuck_threshold_s,
    )


# -- Daemon -------------------------------------------------------------------------------------


def family_state_path(cfg: Config, family: str) -> Path:
    return cfg.family(family).state_path(cfg.daemon_root)


def verify_recorded(state: Any, cfg: Config) -> tuple[DaemonStatus, str | None, Any]:
    """(status, why, health payload) for a state record, judged by kitty-orphan-sweep from the
    OS first (create time, root marker, socket ownership), then one health request. A squatter
    on the recorded port is an impostor, never "healthy". Never signals, never sends a key."""
    from kitty_orphan_sweep import check_recorded

    check = check_recorded(state, home=cfg.home, family=cfg.family(state.family))
    return DaemonStatus(check.status.value), check.detail, check.payload


def recorded_state(cfg: Config, family: str) -> Any:
    """The family's `StateRecord` (kitty-daemon-identity), or None."""
    from kitty_daemon_identity import read_state

    return read_state(cfg.daemon_root, cfg.family(family))


def as_recorded(state: Any) -> RecordedDaemon:
    return RecordedDaemon(
        pid=state.pid,
        port=state.port,
        package_version=state.package_version,
        protocol_version=state.protocol_version,
        started_at=state.started_at,
        process_started_at=state.process_started_at,
    )


def collect_daemons(cfg: Config, redactor: Redactor) -> DaemonsFacts:
    from kitty_daemon_identity import read_scope_key, scope_key_path

    root = cfg.daemon_root
    daemons: dict[str, DaemonFacts | None] = {}
    for family in cfg.families:
        state = recorded_state(cfg, family)
        if state is None:
            daemons[family] = None
            continue
        status, error, payload = verify_recorded(state, cfg)
        daemons[family] = DaemonFacts(
            family=family,
            state_path=str(family_state_path(cfg, family)),
            recorded=as_recorded(state),
            status=status,
            health_error=error,
            health_package_version=None if payload is None else payload.package_version,
            expected_version=cfg.expected_version(family),
            busy=None if payload is None else payload.busy,
            idle_s=None if payload is None else payload.idle_s,
        )
    key_path = scope_key_path(root)
    key = read_scope_key(root)
    redactor.add(key)
    return DaemonsFacts(
        root=str(root),
        families=cfg.families,
        daemons=daemons,
        scope_key=ScopeKeyFacts(
            path=str(key_path), exists=key_path.exists(), secure=key is not None
        ),
    )


# -- Orphans ------------------------------------------------------------------------------------


def scan_family(cfg: Config, family: str) -> list[Any]:
    """kitty-orphan-sweep's `ScannedListener`s of one family (record + process facts)."""
    from kitty_orphan_sweep import scan_listeners

    return list(
        scan_listeners(
            cfg.family(family), home=cfg.home, expected_version=cfg.expected_version(family)
        )
    )


def _user_name(uid: int) -> str | None:
    try:
        import pwd
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        return None


def process_doc(process: Any, now_epoch: float) -> dict[str, Any] | None:
    """The review facts of a `ListenerProcess` (None when the pid is unknown): owner, age, the
    command line shortened, the root its marker names and whether it exists, and whether this
    user could stop it at all (another user's process is not ours, unless we are root)."""
    if process is None:
        return None
    geteuid = getattr(os, "geteuid", None)
    me = None if geteuid is None else geteuid()
    uid = process.uid
    yours = None if uid is None or me is None else (uid == me or me == 0)
    created = process.create_time
    return {
        "uid": uid,
        "user": None if uid is None else _user_name(uid),
        "age_s": None if created is None else round(max(now_epoch - created, 0.0), 3),
        "cmdline": None if process.argv is None else short_cmdline(process.argv),
        "root": process.root,
        "root_exists": process.root_exists,
        "yours": yours,
    }


def orphan_entry(scanned: Any, now_epoch: float) -> dict[str, Any]:
    """An Orphans entry: the record's `to_dict()` plus `process` (review facts, or null)."""
    return {**scanned.record.to_dict(), "process": process_doc(scanned.process, now_epoch)}


def collect_orphans(cfg: Config) -> OrphansFacts:
    records: dict[str, tuple[JsonObject, ...]] = {}
    for family in cfg.families:
        scanned = scan_family(cfg, family)
        now = time.time()
        records[family] = tuple(
            orphan_entry(s, now) for s in scanned if not s.record.is_recorded_singleton
        )
    return OrphansFacts(families=cfg.families, records=records)
