"""The findings engine (DOC-04): pure facts -> findings with exact, runnable remediations.

No I/O and no clock: everything it needs is in the facts and the `FindingContext`, so the table in
SPEC §5 is tested row by row without touching the machine.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from kitty_filelock import frozen_dataclass, frozen_field, frozen_replace

from ._durations import exact_age
from ._model import (
    DEFAULT_STUCK_THRESHOLD_S,
    KITTY_BRAND,
    OVERDUE_SLACK_S,
    Brand,
    DaemonsFacts,
    DaemonStatus,
    Finding,
    IdentityFacts,
    LockFacts,
    OrphansFacts,
    Remediation,
    SectionResult,
    SectionStatus,
    Severity,
    StorageFacts,
    TokenFacts,
)
from ._texts import summary
from ._vocabulary import branded

LOGIN_FALLBACK: Final = "log in again with your application"

_GROUP_OTHER_BITS: Final = 0o077
_PRIVATE_DIR_MODE: Final = 0o700


@frozen_dataclass
class FindingContext:
    """What remediation commands must repeat so they act on what this run looked at."""

    session_path: str
    login_command: str | None = None
    home_flag: str | None = None
    """The `--home` value of this run, repeated in `kitty-doctor` remediations (None = resolved
    from the environment, which the next run resolves the same way)."""
    family: str = "all"
    stuck_threshold_s: float = DEFAULT_STUCK_THRESHOLD_S
    expected_version_flag: str | None = None
    """`--expected-daemon-version` as given to this run (None: the installed default, which the
    next run picks again)."""
    uid: int | None = None
    """This user's uid, for a `chown` back to them (None where the OS has no uids)."""
    brand: Brand = KITTY_BRAND
    """Whose doctor this is: the app's name in sentences, its doctor command in remediations."""
    texts: Mapping[str, str] = frozen_field(default_factory=dict)
    """The app's own finding templates by ID (checked by `check_texts`)."""

    @property
    def app(self) -> str:
        return self.brand.app

    def local_disk(self, description: str) -> Remediation:
        """Move the home to a local disk: by its variable, unless the app pins its home."""
        if self.brand.home_env is None:
            return Remediation(None, description)
        return Remediation(f"export {self.brand.home_env}=<path on a local disk>", description)


def doctor_command(
    ctx: FindingContext,
    *flags: str,
    threshold: bool = False,
    version: bool = False,
    home: str | None = None,
) -> str:
    """A doctor command line (`kitty-doctor`, or the app's) that acts on what this run looked
    at: its `--home` (or `home`) and `--family`, `flags`, and the options that changed the
    verdict it remedies — `--stuck-threshold` (`threshold`: the stale-record age) and
    `--expected-daemon-version` (`version`: what counts as drift, and so what `--reset` stops)."""
    parts = shlex.split(ctx.brand.tool)
    home = home if home is not None else ctx.home_flag
    if home is not None:
        parts += ["--home", home]
    if ctx.family != "all":
        parts += ["--family", ctx.family]
    parts += flags
    if threshold and ctx.stuck_threshold_s != DEFAULT_STUCK_THRESHOLD_S:
        parts += ["--stuck-threshold", f"{ctx.stuck_threshold_s:g}"]
    if version and ctx.expected_version_flag is not None:
        parts += ["--expected-daemon-version", ctx.expected_version_flag]
    return shlex.join(parts)


def _login(ctx: FindingContext, prefix: str = "") -> Remediation:
    if ctx.login_command:
        return Remediation(ctx.login_command, f"{prefix}log in again")
    return Remediation(None, f"{prefix}{LOGIN_FALLBACK}")


def _finding(
    ctx: FindingContext,
    id_: str,
    name: str,
    severity: Severity,
    remediation: Remediation,
    **params: str | int | float,
) -> Finding:
    """A finding whose summary is its template (the app's, else `FINDING_TEXTS`) filled from
    `params`, which the finding keeps so an app can word it from the facts themselves."""
    filled = {"app": ctx.app, **params}
    return Finding(id_, name, severity, summary(id_, filled, ctx.texts), remediation, filled)


def _ports(ports: Iterable[object]) -> str:
    return ", ".join(str(p) for p in ports)


def _session_findings(
    identity: IdentityFacts | None,
    tokens: TokenFacts | None,
    storage: StorageFacts | None,
    ctx: FindingContext,
) -> list[Finding]:
    state = identity.state if identity is not None else None
    if state is None and storage is not None:
        state = {
            "missing": "not_authenticated",
            "corrupt": "corrupt",
            "unreadable": "unreadable",
        }.get(storage.parse)
    out: list[Finding] = []
    if state == "not_authenticated":
        out.append(
            _finding(
                ctx, "KD101", "no_session", Severity.CRITICAL, _login(ctx), path=ctx.session_path
            )
        )
    elif state == "unreadable" and storage is not None and storage.permission_denied:
        # Unreadable is not corrupt (issue 12): the file may be perfectly good, only not ours to
        # read (written by `sudo <app> login`) or shut by a mode; moving it aside would lose it.
        out.append(_unreadable_finding(storage, ctx))
    elif state in ("corrupt", "unreadable"):
        # Corrupt, or not a file the app may read at all (a symlink, a loop): move it aside.
        reason = storage.corrupt_reason if storage is not None else None
        path = ctx.session_path
        login = ctx.login_command or LOGIN_FALLBACK
        out.append(
            _finding(
                ctx,
                "KD102",
                "storage_corrupt",
                Severity.CRITICAL,
                Remediation(
                    shlex.join(["mv", path, path + ".corrupt"]),
                    f"move the {state} file aside, then: {login}",
                ),
                state=state,
                reason=reason or "unreadable",
            )
        )
    elif state == "expired":
        out.append(_finding(ctx, "KD103", "session_expired", Severity.CRITICAL, _login(ctx)))
    elif (
        state == "authenticated"
        and tokens is not None
        and tokens.present
        and tokens.access_expires_in_s is not None
        and tokens.access_expires_in_s <= 0
        and (tokens.refresh_expires_in_s is None or tokens.refresh_expires_in_s > 0)
    ):
        out.append(
            _finding(
                ctx,
                "KD104",
                "access_expired",
                Severity.INFO,
                Remediation(None, "none needed: refreshed on next use"),
            )
        )
    if storage is not None:
        out += _permission_findings(storage, ctx)
    return out


_TOKENS_EXPOSED: Final = "other users could read the session's tokens"
_HOME_EXPOSED: Final = (
    "other users can look inside the home (plain mkdir makes it 0755; {app} creates its home"
    " 0700 but never changes one that exists)"
)


def _permission_findings(storage: StorageFacts, ctx: FindingContext) -> list[Finding]:
    problems: list[str] = []
    commands: list[str] = []
    why: list[str] = []
    if storage.exists and storage.mode is not None and storage.mode & _GROUP_OTHER_BITS:
        problems.append(f"session file mode {storage.mode:04o}")
        commands.append(shlex.join(["chmod", "600", storage.path]))
        why.append(_TOKENS_EXPOSED)
    # SPEC: the auth dir must be exactly 0700 (group/other access leaks; a missing owner bit
    # stops the app writing the session).
    if storage.dir_mode is not None and storage.dir_mode != _PRIVATE_DIR_MODE:
        problems.append(f"auth dir mode {storage.dir_mode:04o}")
        commands.append(shlex.join(["chmod", "700", storage.dir_path]))
        why.append(
            _TOKENS_EXPOSED
            if storage.dir_mode & _GROUP_OTHER_BITS
            else f"{ctx.app} cannot write the session in it"
        )
    if storage.home_mode is not None and storage.home_mode & _GROUP_OTHER_BITS:
        problems.append(f"home mode {storage.home_mode:04o}")
        commands.append(shlex.join(["chmod", "700", storage.home_path]))
        why.append(branded(_HOME_EXPOSED, ctx.app))
    if storage.exists and storage.owner_ok is False:
        problems.append("session file owned by another user")
    if not problems:
        return []
    if commands:
        reasons = "; ".join(dict.fromkeys(why))  # each reason once, in order
        remediation = Remediation(" && ".join(commands), f"remove group/other access: {reasons}")
    else:
        remediation = Remediation(None, "log in as the file's owner, or remove the file")
    return [
        _finding(
            ctx,
            "KD105",
            "storage_permissions",
            Severity.WARN,
            remediation,
            problems=", ".join(problems),
        )
    ]


def _unreadable_finding(storage: StorageFacts, ctx: FindingContext) -> Finding:
    """KD106: the session file exists but this user may not read it, and how to read it again."""
    path = ctx.session_path
    reason = storage.corrupt_reason or "permission denied"
    if storage.dir_mode is not None and (storage.dir_mode & 0o700) != 0o700:
        remediation = Remediation(
            shlex.join(["chmod", "700", storage.dir_path]),
            "the auth directory shuts its owner out: give it back its owner's access",
        )
    elif storage.owner_ok is False and ctx.uid is not None:
        remediation = Remediation(
            shlex.join(["sudo", "chown", str(ctx.uid), path]),
            "the file belongs to another user (a login run with sudo?): make it yours again",
        )
    else:
        remediation = Remediation(
            shlex.join(["chmod", "600", path]),
            "the file's mode shuts its owner out: let its owner read and write it",
        )
    return _finding(
        ctx, "KD106", "storage_unreadable", Severity.CRITICAL, remediation, reason=reason
    )


def _stuck_because(lock: LockFacts, age_s: float) -> str:
    """Which rule made a held lock stuck, in words (KD201's trigger)."""
    max_hold = lock.record.max_hold_s if lock.record is not None else None
    if max_hold is not None and age_s > max_hold + OVERDUE_SLACK_S:
        return f"longer than its max hold of {max_hold:.0f} s + {OVERDUE_SLACK_S:.0f} s grace"
    return f"longer than the stuck threshold of {lock.stuck_threshold_s:.0f} s"


def held_by(lock: LockFacts) -> str:
    """'held by pid 7 (cmd)', naming the processes the OS shows holding the lock now."""
    names = ", ".join(map(str, lock.holders))
    taker = lock.holder_pid
    if not lock.holders:
        taken = "" if taker is None else f"taken by pid {taker} (exited) "
        return f"{taken}held by a process the OS does not show"
    if lock.taker_exited:
        return f"taken by pid {taker} (exited) is held by {names}, which inherited it,"
    return f"held by {names}"


def _kill_holders(lock: LockFacts) -> Remediation:
    # Never "kill <pid>" for a pid that has exited: only the processes the OS shows holding it.
    if not lock.holders:
        return Remediation(
            shlex.join(["fuser", "-v", lock.path]),
            "find the processes holding the lock file open (as root to see every user's), then"
            " stop them; --unstick-lock cannot free a held lock",
        )
    return Remediation(
        shlex.join(["kill", *(str(h.pid) for h in lock.holders)]),
        (
            "stop the process that holds"
            if len(lock.holders) == 1
            else "stop the processes that hold"
        )
        + " the lock; --unstick-lock cannot free a held lock",
    )


def _lock_findings(lock: LockFacts, ctx: FindingContext) -> list[Finding]:
    out: list[Finding] = []
    if lock.stuck:
        age = lock.holder_age_s or 0.0
        out.append(
            _finding(
                ctx,
                "KD201",
                "lock_stuck",
                Severity.CRITICAL,
                _kill_holders(lock),
                held_by=held_by(lock),
                age=exact_age(age),
                because=_stuck_because(lock, age),
            )
        )
    elif lock.stale_and_old and lock.record is not None:
        age = lock.record.age_s or 0.0
        out.append(
            _finding(
                ctx,
                "KD202",
                "lock_stale_record",
                Severity.INFO,
                Remediation(
                    doctor_command(ctx, "--unstick-lock", threshold=True),
                    "clear the leftover record (cosmetic: the next holder overwrites it anyway)",
                ),
                pid=lock.record.pid,
                age=exact_age(age),
            )
        )
    if lock.network_fs:
        out.append(
            _finding(
                ctx,
                "KD203",
                "lock_network_fs",
                Severity.WARN,
                ctx.local_disk(f"keep {ctx.app}'s home on a local disk"),
                fs_type=str(lock.fs_type),
                mode=str(lock.mode),
            )
        )
    if lock.foreign_host and lock.record is not None:
        out.append(
            _finding(
                ctx,
                "KD204",
                "lock_foreign_host",
                Severity.WARN,
                ctx.local_disk(f"give each machine its own {ctx.app} home"),
                host=str(lock.record.host),
                this_host=lock.this_host,
            )
        )
    return out


_STALE_WHAT: Final = {
    DaemonStatus.DEAD: "no longer running",
    DaemonStatus.REUSED: "reused",
    DaemonStatus.FOREIGN: "not {a_app} daemon of this home (no root marker); never signalled",
}


def _daemon_findings(daemons: DaemonsFacts, ctx: FindingContext) -> list[Finding]:
    out: list[Finding] = []
    for family in daemons.families:
        facts = daemons.daemons.get(family)
        if facts is None:
            continue
        rec = facts.recorded
        if facts.status is DaemonStatus.HEALTHY and facts.version_drift:
            actual = facts.health_package_version or rec.package_version
            out.append(
                _finding(
                    ctx,
                    "KD301",
                    "daemon_version_drift",
                    Severity.WARN,
                    Remediation(
                        doctor_command(ctx, "--reset", version=True), "replace it on next use"
                    ),
                    family=family,
                    pid=rec.pid,
                    running=str(actual),
                    expected=str(facts.expected_version),
                )
            )
        elif facts.status is DaemonStatus.UNHEALTHY:
            out.append(
                _finding(
                    ctx,
                    "KD302",
                    "daemon_unhealthy",
                    Severity.WARN,
                    Remediation(
                        doctor_command(ctx, "--reset", "--force", version=True),
                        "stop it (with your consent)",
                    ),
                    family=family,
                    pid=rec.pid,
                    port=rec.port,
                    error=facts.health_error or "no answer",
                )
            )
        elif facts.status is DaemonStatus.IMPOSTOR:
            out.append(
                _finding(
                    ctx,
                    "KD305",
                    "daemon_port_impostor",
                    Severity.CRITICAL,
                    Remediation(
                        doctor_command(ctx, "--reset", "--force", version=True),
                        "stop the recorded daemon (never the listener) and clear its record",
                    ),
                    family=family,
                    port=rec.port,
                    pid=rec.pid,
                    error=facts.health_error or "another process listens there",
                )
            )
        elif facts.status in _STALE_WHAT:
            out.append(
                _finding(
                    ctx,
                    "KD303",
                    "daemon_record_stale",
                    Severity.INFO,
                    Remediation(
                        doctor_command(ctx, "--reset", version=True), "remove the stale record"
                    ),
                    family=family,
                    pid=rec.pid,
                    what=branded(_STALE_WHAT[facts.status], ctx.app),
                )
            )
    key = daemons.scope_key
    if key.exists and not key.secure:
        out.append(
            _finding(
                ctx,
                "KD304",
                "scope_key_insecure",
                Severity.WARN,
                Remediation(shlex.join(["chmod", "600", key.path]), "make the key private"),
                path=key.path,
            )
        )
    return out


def _orphan_findings(orphans: OrphansFacts, ctx: FindingContext) -> list[Finding]:
    from ._review import is_yours, other_home, reason

    safe: list[object] = []
    operator: list[str] = []
    homes: dict[str, list[object]] = {}
    for family in orphans.families:
        for rec in orphans.records.get(family, ()):
            klass = rec.get("cleanup_class")
            if not is_yours(rec):
                continue  # another user's: shown as information, nothing this user can run
            if klass == "safe_auto":
                safe.append(rec.get("port"))
            elif (home := other_home(rec)) is not None:
                homes.setdefault(home, []).append(rec.get("port"))
            elif klass == "operator_required":
                operator.append(f"port {rec.get('port')}: {reason(rec, ctx.app)}")
    out: list[Finding] = []
    for home, ports in sorted(homes.items()):
        noun = "daemon" if len(ports) == 1 else "daemons"
        out.append(
            _finding(
                ctx,
                "KD403",
                "orphans_other_home",
                Severity.INFO,
                Remediation(
                    doctor_command(ctx, "--reset", version=True, home=home),
                    "clean them up from their own home",
                ),
                count=len(ports),
                noun=noun,
                home=home,
                ports=_ports(ports),
            )
        )
    if safe:
        noun = "daemon" if len(safe) == 1 else "daemons"
        out.append(
            _finding(
                ctx,
                "KD401",
                "orphans_safe_auto",
                Severity.WARN,
                Remediation(doctor_command(ctx, "--reset", version=True), "stop safe orphans"),
                count=len(safe),
                noun=noun,
                ports=_ports(safe),
            )
        )
    if operator:
        noun = "daemon" if len(operator) == 1 else "daemons"
        out.append(
            _finding(
                ctx,
                "KD402",
                "orphans_operator_required",
                Severity.WARN,
                Remediation(
                    doctor_command(ctx, "--reset", "--force", version=True),
                    "review them, then stop them",
                ),
                count=len(operator),
                noun=noun,
                listeners="; ".join(operator),
            )
        )
    return out


def _crash_findings(sections: Sequence[SectionResult], ctx: FindingContext) -> list[Finding]:
    return [
        _finding(
            ctx,
            "KD901",
            "section_crashed",
            Severity.CRITICAL,
            Remediation(
                doctor_command(ctx, "--verbose", threshold=True, version=True),
                "re-run with --verbose and report it",
            ),
            section=s.name.heading,
            error=str(s.error),
        )
        for s in sections
        if s.status is SectionStatus.CRASHED
    ]


def derive_findings(
    *,
    identity: IdentityFacts | None,
    tokens: TokenFacts | None,
    storage: StorageFacts | None,
    lock: LockFacts | None,
    daemons: DaemonsFacts | None,
    orphans: OrphansFacts | None,
    sections: Sequence[SectionResult],
    ctx: FindingContext,
) -> tuple[Finding, ...]:
    """Every finding the facts support, ordered by ID (stable across runs)."""
    found = _session_findings(identity, tokens, storage, ctx)
    if lock is not None:
        found += _lock_findings(lock, ctx)
    if daemons is not None:
        found += _daemon_findings(daemons, ctx)
    if orphans is not None:
        found += _orphan_findings(orphans, ctx)
    found += _crash_findings(sections, ctx)
    return tuple(sorted(found, key=lambda f: f.id))


def after_repairs(
    findings: tuple[Finding, ...], reset: Mapping[str, object] | None, ctx: FindingContext
) -> tuple[Finding, ...]:
    """Never recommend again the `--reset` that just ran and left something behind: such a
    remediation says what failed instead, and when only another user or root can get past it
    (permission denied), says that."""
    from ._vocabulary import FAILURE_WORDS, NEEDS_OWNER_OR_ROOT, words

    if reset is None:
        return findings
    failures: list[tuple[object, object]] = []
    for key in ("failed", "recorded_daemons"):
        entries = reset.get(key)
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, Mapping) and entry.get("failure_reason"):
                failures.append((entry.get("port"), entry.get("failure_reason")))
    if not failures:
        return findings
    ran = {doctor_command(ctx, "--reset", version=True)}
    if reset.get("consent") in ("forced", "confirmed"):
        ran.add(doctor_command(ctx, "--reset", "--force", version=True))
    tried = "; ".join(f"port {port}: {words(FAILURE_WORDS, why)}" for port, why in failures)
    needs_other = any(why in NEEDS_OWNER_OR_ROOT for _, why in failures)
    description = f"the reset just run did not stop them ({tried}); " + (
        "only the user they run as, or root, can stop them"
        if needs_other
        else "the Repairs block above says why; running it again would not change that"
    )
    return tuple(
        frozen_replace(f, remediation=Remediation(None, description))
        if f.remediation.command in ran
        else f
        for f in findings
    )
