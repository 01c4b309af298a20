"""sweep(): stop the records a scan allows, in parallel, with no wrong kill (SWP-07..SWP-13)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kitty_daemon_identity import (
    KITTY,
    AppProfile,
    CleanupClass,
    DaemonFamily,
    DaemonIdentityRecord,
    Family,
    HealthOutcome,
    SkipReason,
    as_family,
    scope_id,
)

from ._errors import SweepGuardError
from ._escalate import Target, escalate
from ._proctable import ProcessTable, PsutilProcessTable
from ._results import EscalationBudgets, FailedEntry, ResetResult, SkippedEntry, SweptEntry
from ._scan import scanned_marker_root

#: Reasons whose records passed DID-12 row 9: their root marker equals the caller's root.
_OUR_MARKER = frozenset(
    {
        SkipReason.UNRESPONSIVE,
        SkipReason.OTHER_NAMESPACE,
        SkipReason.PID_PORT_MISMATCH,
        SkipReason.CREATE_TIME_MISMATCH,
    }
)


def _static_guard(
    record: DaemonIdentityRecord, family: Family | None, profile: AppProfile
) -> Family:
    """SWP-08: programming errors, checked for every record before anything is signalled.

    Returns the record's family, looked up in the app that was scanned.
    """
    if record.app != profile:
        raise SweepGuardError(record, "scanned_app")
    try:
        rec_family = profile.family(record.daemon_family)
    except ValueError:
        raise SweepGuardError(record, "known_family") from None
    if family is not None and rec_family.name != family.name:
        raise SweepGuardError(record, "scanned_family")
    if record.port not in rec_family.range():
        raise SweepGuardError(record, "port_in_family_range")
    try:
        cls = CleanupClass(record.cleanup_class)
    except ValueError:
        raise SweepGuardError(record, "known_cleanup_class") from None
    # A safe_auto record always names a PID with a start time and carries no skip reason.
    if cls is CleanupClass.SAFE_AUTO and (
        record.skip_reason is not None or record.pid is None or record.process_started_at is None
    ):
        raise SweepGuardError(record, "consistent_cleanup_class")
    if cls is not CleanupClass.SAFE_AUTO and record.skip_reason is None:
        raise SweepGuardError(record, "consistent_cleanup_class")
    return rec_family


def _target(record: DaemonIdentityRecord, family: Family, root: Path, my_scope: str) -> Target:
    reason = record.skip_reason
    marker: str | None = None
    key_root: Path | None = None
    signatures: tuple[str, ...] = ()
    if reason is None or reason in _OUR_MARKER:
        marker, key_root = str(root), root
    elif reason is SkipReason.CROSS_ROOT:
        # The marker it was scanned with is kill authority for that process only; the other
        # root's key is that home's secret and never leaves this process.
        marker = scanned_marker_root(record.port, record.pid, record.process_started_at)
    elif reason is SkipReason.PRE_MARKER:
        # Spawn-shaped argv without a marker (kitty before 0.1): the entry signature, the exact
        # create time and the port are re-checked before each signal. No key: no root claimed.
        signatures = family.entry_signatures
    elif reason is SkipReason.MISSING_PID and (
        record.singleton_scope_id == my_scope and record.daemon_root == str(root)
    ):
        # No PID means no argv and no marker: the only evidence is the listener's self-report,
        # which anyone can forge. Our own key goes only to a listener claiming exactly our root
        # and scope (the escalation engine also proves the socket's owner uid, or sends nothing); a
        # root it merely names is never a reason to read and send that root's key.
        key_root = root
    create_time = record.process_started_at
    if (
        record.pid is not None
        and record.health_status == HealthOutcome.OK
        and record.start_time_matches is None
    ):
        # The process's create time was unreadable at scan, so the classifier reported the
        # listener's self-claimed start time instead. A claim is not an observation: the SWP-09
        # re-check against it proves nothing, so no signal (nor the key) may rely on it.
        create_time = None
    label = str(CleanupClass(record.cleanup_class).value)
    if record.stale_version:
        label += " stale_version"
    return Target(
        port=record.port,
        pid=record.pid,
        create_time=create_time,
        cleanup_class=record.cleanup_class,
        marker_root=marker,
        key_root=key_root,
        package_version=record.package_version,
        protocol_version=record.protocol_version,
        reason=label,
        entry_signatures=signatures,
        profile=family.app,
    )


def sweep(
    records: Iterable[DaemonIdentityRecord],
    *,
    force: bool = False,
    home: Path | str | None = None,
    budgets: EscalationBudgets | None = None,
    family: DaemonFamily | Family | str | None = None,
    process_table: ProcessTable | None = None,
) -> ResetResult:
    """Stop every `safe_auto` record (and `operator_required` ones with `force=True`).

    `never_touch` records are never signalled. Static guards run for all records first
    (violation → `SweepGuardError`, nothing signalled); runtime guards run before every signal;
    all targets escalate in parallel, so the whole sweep takes at most one target's budget.
    Records carry the app that scanned them; every record must be of one app (``family``'s
    when given).
    """
    items = list(records)
    fam = as_family(family) if family is not None else None
    profile = fam.app if fam is not None else (items[0].app if items else KITTY)
    families = [_static_guard(record, fam, profile) for record in items]
    budgets = budgets if budgets is not None else EscalationBudgets()
    table = process_table if process_table is not None else PsutilProcessTable()
    root = profile.daemon_root(home)
    allowed = {CleanupClass.SAFE_AUTO} | ({CleanupClass.OPERATOR_REQUIRED} if force else set())
    skipped: list[SkippedEntry] = []
    targets: list[Target] = []
    my_scope = (
        scope_id(root) if any(CleanupClass(r.cleanup_class) in allowed for r in items) else ""
    )
    for record, rec_family in zip(items, families, strict=True):
        if CleanupClass(record.cleanup_class) in allowed:
            targets.append(_target(record, rec_family, root, my_scope))
        else:
            skipped.append(
                SkippedEntry(record.pid, record.port, record.cleanup_class, record.skip_reason)
            )
    outcomes: list[SweptEntry | FailedEntry] = []
    if targets:
        protected = table.protected_pids()
        with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="sweep") as pool:
            outcomes = list(pool.map(lambda t: escalate(t, budgets, table, protected), targets))
    swept = [o for o in outcomes if isinstance(o, SweptEntry)]
    failed = [o for o in outcomes if isinstance(o, FailedEntry)]
    return ResetResult(
        swept=tuple(sorted(swept, key=lambda e: e.port)),
        skipped=tuple(sorted(skipped, key=lambda e: e.port)),
        failed=tuple(sorted(failed, key=lambda e: e.port)),
    )
