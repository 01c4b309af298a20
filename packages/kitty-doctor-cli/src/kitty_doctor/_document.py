"""The `--json` document (DOC-08) and the fatal-error envelope (DOC-10), as plain dicts.

The shape is pinned by `schema/doctor-report.schema.json` (DOC-09); a change that removes or
retypes a field must bump `REPORT_SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from typing import Any

from ._model import (
    REPORT_SCHEMA_VERSION,
    DaemonFacts,
    DaemonsFacts,
    Finding,
    IdentityFacts,
    LockFacts,
    OrphansFacts,
    Report,
    StorageFacts,
    TokenFacts,
)


def _mode(mode: int | None) -> str | None:
    return None if mode is None else f"{mode:04o}"


def _ms(value: float) -> int:
    return round(value)


def _s(value: float | None) -> float | None:
    """Seconds to the millisecond: more digits would only be noise."""
    return None if value is None else round(value, 3)


def jsonable(value: object) -> Any:
    """Dataclasses (objects with `__slots__`/`__dict__` fields), enums, tuples -> JSON types.

    Used for `ResetResult` and its entries, whose exact classes live in kitty-orphan-sweep.
    """
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: jsonable(getattr(value, name)) for name in fields}
    return str(value)


def identity_doc(facts: IdentityFacts) -> dict[str, Any]:
    return {
        "state": facts.state,
        "subject": facts.subject,
        "email": facts.email,
        "session_hash": facts.session_hash,
    }


def tokens_doc(facts: TokenFacts) -> dict[str, Any]:
    return {
        "present": facts.present,
        "access_expires_in_s": _s(facts.access_expires_in_s),
        "refresh_expires_in_s": _s(facts.refresh_expires_in_s),
        "refresh_server_managed": facts.present and facts.refresh_expires_in_s is None,
        "issued_at": facts.issued_at,
        "scope": facts.scope,
        "token_type": facts.token_type,
    }


def storage_doc(facts: StorageFacts) -> dict[str, Any]:
    return {
        "path": facts.path,
        "exists": facts.exists,
        "size": facts.size,
        "mode": _mode(facts.mode),
        "dir_path": facts.dir_path,
        "dir_mode": _mode(facts.dir_mode),
        "home_mode": _mode(facts.home_mode),
        "owner_ok": facts.owner_ok,
        "parse": facts.parse,
        "corrupt_reason": facts.corrupt_reason,
    }


def lock_doc(facts: LockFacts) -> dict[str, Any]:
    rec = facts.record
    return {
        "path": facts.path,
        "exists": facts.exists,
        "held": facts.held,
        "holder_pid": facts.holder_pid,
        "holder_source": facts.holder_source,
        "holder_cmdline": facts.holder_cmdline,
        "holder_age_s": _s(facts.holder_age_s),
        "holders": [{"pid": h.pid, "cmdline": h.cmdline} for h in facts.holders],
        "record": None
        if rec is None
        else {
            "pid": rec.pid,
            "host": rec.host,
            "acquired_at": rec.acquired_at,
            "age_s": _s(rec.age_s),
            "label": rec.label,
            "max_hold_s": rec.max_hold_s,
        },
        "stale_record": facts.stale_record,
        "mode": facts.mode,
        "fs_type": facts.fs_type,
        "network_fs": facts.network_fs,
        "foreign_host": facts.foreign_host,
        "stuck": facts.stuck,
        "stuck_threshold_s": facts.stuck_threshold_s,
        "unreadable": facts.unreadable,
    }


def daemon_doc(facts: DaemonFacts) -> dict[str, Any]:
    rec = facts.recorded
    return {
        "state_path": facts.state_path,
        "recorded": {
            "pid": rec.pid,
            "port": rec.port,
            "package_version": rec.package_version,
            "protocol_version": rec.protocol_version,
            "started_at": rec.started_at,
        },
        "health": facts.status.value,
        "health_error": facts.health_error,
        "running_version": facts.health_package_version,
        "expected_version": facts.expected_version,
        "version_drift": facts.version_drift,
        "busy": facts.busy,
        "idle_s": facts.idle_s,
    }


def daemons_doc(facts: DaemonsFacts) -> dict[str, Any]:
    return {
        family: (None if (d := facts.daemons.get(family)) is None else daemon_doc(d))
        for family in facts.families
    }


def scope_key_doc(facts: DaemonsFacts) -> dict[str, Any]:
    key = facts.scope_key
    return {"daemon_root": facts.root, "path": key.path, "exists": key.exists, "secure": key.secure}


def orphans_doc(facts: OrphansFacts) -> dict[str, Any]:
    return {
        family: [jsonable(r) for r in facts.records.get(family, ())] for family in facts.families
    }


def finding_doc(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.id,
        "name": finding.name,
        "severity": finding.severity.value,
        "summary": finding.summary,
        "remediation": {
            "command": finding.remediation.command,
            "description": finding.remediation.description,
        },
    }


#: The classifier's one value that names kitty (`SkipReason.NOT_KITTY`, "no kitty health
#: answer"): an app's document says `not_<app>` instead, so kitty's brand never reaches the
#: app's users and its scripts match on its own name.
_NOT_KITTY = "not_kitty"


def in_app_words(value: Any, app: str) -> Any:
    """`value` (a document part) with every `skip_reason` of `not_kitty` said for `app`."""
    if app == "kitty":
        return value
    if isinstance(value, dict):
        return {
            key: f"not_{app.replace('-', '_')}"
            if key == "skip_reason" and item == _NOT_KITTY
            else in_app_words(item, app)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [in_app_words(item, app) for item in value]
    return value


def report_document(report: Report) -> dict[str, Any]:
    """The `--json` document of `report` (DOC-08), pinned by the shipped schema."""
    unstick = report.repairs.unstick_lock
    app = report.brand.app
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "tool": {
            "name": report.brand.tool,
            "version": report.tool_version,
            "packages": report.packages,
        },
        "generated_at": report.generated_at,
        "duration_ms": _ms(report.duration_ms),
        "exit_code": report.exit_code,
        "home": {
            "path": report.home.path,
            "source": report.home.source.value,
            "exists": report.home.exists,
        },
        "families": list(report.families),
        "ranges": {family: list(rng) for family, rng in report.ranges.items()},
        "identity": None if report.identity is None else identity_doc(report.identity),
        "tokens": None if report.tokens is None else tokens_doc(report.tokens),
        "storage": None if report.storage is None else storage_doc(report.storage),
        "refresh_lock": None if report.refresh_lock is None else lock_doc(report.refresh_lock),
        "scope_key": None if report.daemons is None else scope_key_doc(report.daemons),
        "daemons": None if report.daemons is None else daemons_doc(report.daemons),
        "orphans": None
        if report.orphans is None
        else in_app_words(orphans_doc(report.orphans), app),
        "findings": [finding_doc(f) for f in report.findings],
        "repairs": {
            "reset": None
            if report.repairs.reset is None
            else in_app_words(jsonable(report.repairs.reset), app),
            "unstick_lock": None
            if unstick is None
            else {"released": unstick.released, "message": unstick.message},
        },
        "sections": {
            s.name.value: {
                "status": s.status.value,
                "duration_ms": _ms(s.duration_ms),
                "error": s.error,
            }
            for s in report.sections
        },
    }


def error_document(error_type: str, message: str) -> dict[str, Any]:
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "error": {"type": error_type, "message": message},
        "exit_code": 2,
    }


def dumps(document: Mapping[str, Any]) -> str:
    """One line of JSON (ASCII-safe whatever the terminal's encoding), no trailing newline."""
    return json.dumps(document, sort_keys=False, allow_nan=False)
