"""A representative report (every section populated, several findings) for render/JSON tests."""

from __future__ import annotations

from dataclasses import replace

from _doctorkit import (
    CTX,
    IDENTITY_OK,
    LOCK_FREE,
    RECORD,
    STORAGE_OK,
    TOKENS_OK,
    daemon,
    daemons,
    orphan,
    orphans,
)
from kitty_doctor._findings import derive_findings
from kitty_doctor._model import (
    HomeFacts,
    HomeSource,
    LockHolder,
    Repairs,
    Report,
    SectionName,
    SectionResult,
    SectionStatus,
)

PACKAGES = {
    "kitty-filelock": "0.1.0",
    "kitty-auth-refresh": "0.1.0",
    "kitty-daemon-identity": "0.1.0",
    "kitty-orphan-sweep": "0.1.0",
    "kitty-doctor-cli": "0.1.0",
}


def representative(**overrides: object) -> Report:
    lock = replace(
        LOCK_FREE,
        held=True,
        holder_pid=4242,
        holder_source="proc_locks",
        holder_cmdline="python worker.py",
        record=RECORD,
        holders=(LockHolder(4242, "python worker.py"),),
    )
    facts: dict[str, object] = {
        "identity": IDENTITY_OK,
        "tokens": TOKENS_OK,
        "storage": STORAGE_OK,
        "lock": lock,
        "daemons": daemons(daemon()),
        "orphans": orphans(
            orphan(20403, "safe_auto"),
            orphan(20404, "operator_required", "pre_marker", identity_source="none"),
            orphan(20405, "never_touch", "third_party", pid=7001, package_version=None),
        ),
    }
    sections = tuple(SectionResult(name, SectionStatus.OK, 1.0) for name in SectionName)
    facts.update(overrides)
    findings = derive_findings(sections=sections, ctx=CTX, **facts)  # type: ignore[arg-type]  # facts typed per key above
    return Report(
        tool_version="0.1.0",
        packages=PACKAGES,
        generated_at="2025-05-01T10:05:00Z",
        duration_ms=212.0,
        home=HomeFacts("/h", HomeSource.DEFAULT),
        families=("sync", "dashboard"),
        identity=facts["identity"],  # type: ignore[arg-type]  # same dict as above
        tokens=facts["tokens"],  # type: ignore[arg-type]  # same dict as above
        storage=facts["storage"],  # type: ignore[arg-type]  # same dict as above
        refresh_lock=facts["lock"],  # type: ignore[arg-type]  # same dict as above
        daemons=facts["daemons"],  # type: ignore[arg-type]  # same dict as above
        orphans=facts["orphans"],  # type: ignore[arg-type]  # same dict as above
        findings=findings,
        sections=sections,
        repairs=Repairs(),
        ranges={"sync": (20400, 20450), "dashboard": (20450, 20550)},
    )
