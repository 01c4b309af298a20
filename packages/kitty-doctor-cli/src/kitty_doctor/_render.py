"""Human output (DOC-02, DOC-03): the report as marked lines on a `rich.Console`.

Imported only for human output; `--json` never loads rich (DOC-13). The console is injected so
tests render into `Console(file=StringIO())`; colour follows rich's own rules (none when not a
TTY or when `NO_COLOR` is set).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from rich.console import Console
from rich.text import Text

from ._durations import humanize_age, humanize_remaining
from ._findings import held_by
from ._model import (
    DaemonFacts,
    DaemonsFacts,
    DaemonStatus,
    Finding,
    HomeFacts,
    HomeSource,
    IdentityFacts,
    LockFacts,
    OrphansFacts,
    Report,
    SectionName,
    SectionResult,
    SectionStatus,
    Severity,
    StorageFacts,
    TokenFacts,
)
from ._review import details, headline, is_yours
from ._terminal import terminal_safe
from ._vocabulary import (
    CLEANUP_PATH_WORDS,
    FAILURE_WORDS,
    HOLDER_SOURCE_WORDS,
    NEEDS_OWNER_OR_ROOT,
    a_app,
    why,
    words,
)
from ._wrap import break_offsets

OK: Final = ("✓", "green")
WARN: Final = ("!", "yellow")
BAD: Final = ("✗", "red")
INFO: Final = ("·", "cyan")

_SEVERITY_MARK: Final = {Severity.CRITICAL: BAD, Severity.WARN: WARN, Severity.INFO: INFO}

Mark = tuple[str, str]


_DETAIL_INDENT: Final = 6
#: Continuation lines of a detail sit two columns further in than the detail itself.
_DETAIL_HANGING: Final = _DETAIL_INDENT + 2


class _Out:
    """Marked lines; with a `width`, wrapped at spaces with a hanging indent (continuations line
    up under the text, not under the mark). Without one (a pipe), one report line per line."""

    def __init__(self, console: Console, width: int | None, app: str) -> None:
        self.console = console
        self.width = width
        self.app = app  # whose daemons and sessions the lines speak of

    def emit(self, prefix: Text, body: Text, hanging: int) -> None:
        if self.width is None:
            self.console.print(prefix + body, soft_wrap=True)
            return
        first = max(self.width - prefix.cell_len, 1)
        offsets = break_offsets(body.plain, first, max(self.width - hanging, 1))
        for i, piece in enumerate(body.divide(offsets)):
            piece.rstrip()
            self.console.print((prefix if i == 0 else Text(" " * hanging)) + piece, soft_wrap=True)

    def heading(self, title: str) -> None:
        self.console.print(Text(terminal_safe(title), style="bold"))

    def line(self, mark: Mark | None, text: str, indent: int = 2) -> None:
        prefix = Text(" " * indent)
        if mark is None:
            prefix.append("  ")
        else:
            prefix.append(mark[0], style=mark[1])
            prefix.append(" ")
        self.emit(prefix, Text(terminal_safe(text)), indent + 2)

    def detail(self, text: str) -> None:
        self.emit(
            Text(" " * _DETAIL_INDENT), Text(terminal_safe(text), style="dim"), _DETAIL_HANGING
        )


def _mistyped(home: HomeFacts) -> bool:
    # A --home the operator typed that names nothing must not read as "not logged in" (issue 10
    # §4). A missing default or $<APP>_HOME is a fresh machine: the app creates it at first login.
    return home.source is HomeSource.FLAG and not home.exists


def _identity(out: _Out, facts: IdentityFacts, home: HomeFacts) -> None:
    who = facts.subject or "unknown subject"
    if facts.email:
        who += f" <{facts.email}>"
    if facts.state == "authenticated":
        out.line(OK, f"authenticated as {who} (session {facts.session_hash})")
    elif facts.state == "expired":
        out.line(BAD, f"session expired for {who} (session {facts.session_hash})")
    elif facts.state in ("corrupt", "unreadable"):
        out.line(BAD, f"session file is {facts.state}")
    elif _mistyped(home):
        out.line(BAD, "no session: the home does not exist")
    else:
        out.line(BAD, "not logged in")
    origin = {"env": f"from {home.env}", "flag": "from --home", "default": "default"}[home.source]
    out.detail(f"home {home.path} ({origin})")


def _tokens(out: _Out, facts: TokenFacts) -> None:
    if not facts.present:
        out.line(None, "no tokens (no readable session)")
        return
    access = facts.access_expires_in_s
    if access is not None:
        left = humanize_remaining(access)
        mark = OK if access > 0 else INFO
        out.line(mark, f"access token: {left}" + ("" if access <= 0 else " left"))
    refresh = facts.refresh_expires_in_s
    if refresh is None:
        out.line(OK, "refresh token: server-managed")
    else:
        left = humanize_remaining(refresh)
        out.line(OK if refresh > 0 else BAD, f"refresh token: {left}" + (" left" * (refresh > 0)))
    out.detail(
        f"issued at {facts.issued_at or '?'}, scope {facts.scope or '-'},"
        f" type {facts.token_type or '?'}"
    )


def _mode(mode: int | None) -> str:
    return "?" if mode is None else f"{mode:04o}"


def _storage(out: _Out, facts: StorageFacts) -> None:
    private = (facts.mode or 0) & 0o077 == 0 and (facts.dir_mode or 0) & 0o077 == 0
    if not facts.exists:
        out.line(BAD, f"{facts.path}: missing")
    elif facts.parse in ("corrupt", "unreadable"):
        out.line(BAD, f"{facts.path}: {facts.parse} ({facts.corrupt_reason})")
    else:
        mark = OK if private and facts.owner_ok is not False else WARN
        out.line(mark, f"{facts.path}: parses ok")
    if not facts.exists:
        where = "missing" if facts.dir_mode is None else f"mode {_mode(facts.dir_mode)}"
        out.detail(f"auth dir {facts.dir_path}: {where}")
        return
    owner = {True: "owner ok", False: "owned by another user", None: "owner ?"}[facts.owner_ok]
    size = "?" if facts.size is None else str(facts.size)  # None: stat failed (ELOOP, ...)
    out.detail(f"{size} bytes, mode {_mode(facts.mode)}, dir mode {_mode(facts.dir_mode)}, {owner}")


def _lock(out: _Out, facts: LockFacts) -> None:
    where = f"{facts.mode or '?'} on {facts.fs_type or '?'}" + (
        " (network filesystem)" if facts.network_fs else ""
    )
    rec = facts.record
    if facts.held:
        age = facts.holder_age_s
        age_text = "unknown time" if age is None else humanize_age(age)
        mark = BAD if facts.stuck else OK
        out.line(mark, f"{held_by(facts)} for {age_text}")
        src = words(HOLDER_SOURCE_WORDS, facts.holder_source)
        if rec is None:
            out.detail(f"holder from {src}; no record yet")
        else:
            out.detail(
                f"holder from {src}; record pid {rec.pid} on {rec.host or '?'},"
                f" label {rec.label or '-'}"
            )
            max_hold = "-" if rec.max_hold_s is None else f"{rec.max_hold_s:g}"
            out.detail(f"acquired {rec.acquired_at or '?'}, max hold {max_hold} s")
    elif facts.held is None:
        why = f": {facts.unreadable}" if facts.unreadable else ""
        out.line(WARN, f"could not tell whether the lock is held{why}")
    elif rec is not None:
        age = rec.age_s
        mark = INFO if facts.stale_and_old else OK
        out.line(
            mark,
            f"unheld; stale record from pid {rec.pid} on {rec.host or '?'}"
            f" ({'?' if age is None else humanize_age(age)} old, harmless)",
        )
    else:
        out.line(OK, "unheld")
    out.detail(f"{facts.path}; {where}; stuck after {facts.stuck_threshold_s:g} s")


def _daemon(out: _Out, family: str, facts: DaemonFacts | None) -> None:
    if facts is None:
        out.line(None, f"{family}: no state record")
        return
    rec = facts.recorded
    version = facts.health_package_version or rec.package_version
    head = f"{family}: pid {rec.pid} port {rec.port} v{version}"
    status = facts.status
    if status is DaemonStatus.HEALTHY:
        drift = facts.version_drift
        mark = WARN if drift else OK
        extra = ""
        if drift:
            extra = f", expected v{facts.expected_version}"
        elif drift is None:
            extra = ", expected version unknown"
        busy = "busy" if facts.busy else f"idle {humanize_age(facts.idle_s or 0.0)}"
        out.line(mark, f"{head} healthy ({busy}{extra})")
    elif status is DaemonStatus.UNHEALTHY:
        out.line(WARN, f"{head} alive but unhealthy: {facts.health_error or 'no answer'}")
    elif status is DaemonStatus.UNVERIFIED:
        out.line(WARN, f"{head} unverified: {facts.health_error or 'cannot verify'}")
    elif status is DaemonStatus.IMPOSTOR:
        out.line(BAD, f"{head} port taken by an impostor: {facts.health_error}")
    elif status is DaemonStatus.FOREIGN:
        out.line(
            WARN, f"{head}: recorded pid is not {a_app(out.app)} daemon of this home (wrong record)"
        )
    else:
        out.line(INFO, f"{head}: recorded process is {status.value} (stale record)")


def _daemons(out: _Out, facts: DaemonsFacts) -> None:
    for family in facts.families:
        _daemon(out, family, facts.daemons.get(family))
    key = facts.scope_key
    if key.exists and not key.secure:
        out.line(WARN, f"scope key {key.path} is not private (ignored by daemons)")


def _orphans(out: _Out, facts: OrphansFacts, verbose: bool) -> None:
    for family in facts.families:
        records: Sequence[Mapping[str, object]] = facts.records.get(family, ())
        hidden = 0
        shown = 0
        for rec in records:
            klass = rec.get("cleanup_class")
            if klass == "never_touch" and not verbose:
                hidden += 1
                continue
            shown += 1
            yours = is_yours(rec)
            mark = WARN if yours and klass in ("safe_auto", "operator_required") else INFO
            out.line(mark, headline(family, rec, out.app))
            # What the operator reviews before consenting; --verbose shows it for every row.
            if verbose or (klass == "operator_required" and yours):
                for text in details(rec):
                    out.detail(text)
        if not shown:
            out.line(OK, f"{family}: no orphans")
        if hidden:
            noun = "listener" if hidden == 1 else "listeners"
            out.detail(f"{hidden} other {noun} {out.app} never touches (--verbose lists them)")


def _findings(out: _Out, findings: Sequence[Finding]) -> None:
    if not findings:
        out.line(OK, "nothing to fix")
    for f in findings:
        out.line(_SEVERITY_MARK[f.severity], f"{f.id} {f.name}: {f.summary}")
        fix = f.remediation
        if fix.command:
            out.emit(
                Text(" " * _DETAIL_INDENT),
                Text("→ ", style="dim")
                + Text(terminal_safe(fix.command), style="bold")
                + Text(f"  ({terminal_safe(fix.description)})", style="dim"),
                _DETAIL_HANGING,
            )
        else:
            out.detail(f"→ {fix.description}")


_RECORDED_ACTION: Final = {
    "remove_stale_record": "its state record names a process that is gone or reused",
    "remove_foreign_record": "its state record names a process that is not its daemon",
    "stop_version_drift": "runs another version",
    "stop_unhealthy": "alive but not answering health",
    "stop_impostor": "another process listens on its port",
    "lock": "its spawn lock",
}
_RECORDED_RESULT: Final = {
    "removed": "record removed",
    "kept": "record kept (it changed meanwhile)",
    "stopped": "stopped",
    "skipped: needs consent (--force)": "left alone: needs your consent (--force)",
}


def _recorded_line(entry: Mapping[str, object]) -> str:
    action, _, detail = str(entry.get("action")).partition(" ")
    did = _RECORDED_ACTION.get(action, action) + (f" {detail}" if detail else "")
    result = str(entry.get("result"))
    failure = entry.get("failure_reason")
    if isinstance(failure, str):
        result = "not stopped: " + words(FAILURE_WORDS, failure)
    return (
        f"recorded {entry.get('family')} daemon pid {entry.get('pid')}: {did}"
        f" -> {_RECORDED_RESULT.get(result, result)}"
    )


def _entries(reset: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    value = reset.get(key)
    return [e for e in value if isinstance(e, Mapping)] if isinstance(value, list) else []


def _repairs(out: _Out, report: Report, verbose: bool) -> None:
    reset = report.repairs.reset
    unstick = report.repairs.unstick_lock
    if reset is None and unstick is None:
        return
    out.heading("Repairs")
    if reset is not None:
        recorded = _entries(reset, "recorded_daemons")
        # The recorded daemon has its own line below: never also "left alone" (as the singleton
        # the sweep must skip) right before "stopped".
        handled = {(e.get("pid"), e.get("port")) for e in recorded}
        said = False
        for entry in _entries(reset, "swept"):
            path = words(CLEANUP_PATH_WORDS, entry.get("cleanup_path"))
            out.line(OK, f"port {entry.get('port')} pid {entry.get('pid')}: {path}")
            said = True
        hidden = 0
        for entry in _entries(reset, "skipped"):
            if (entry.get("pid"), entry.get("port")) in handled:
                continue
            if entry.get("cleanup_class") == "never_touch" and not verbose:
                hidden += 1
                continue
            reason = entry.get("skip_reason")
            why_text = (
                f"not yours (owner {entry.get('owner')})"
                if entry.get("not_yours")
                else why(reason if isinstance(reason, str) else None, app=out.app)
            )
            out.line(
                INFO, f"left alone port {entry.get('port')} pid {entry.get('pid')}: {why_text}"
            )
            said = True
        for entry in _entries(reset, "failed"):
            reason = entry.get("failure_reason")
            out.line(
                BAD,
                f"not stopped port {entry.get('port')} pid {entry.get('pid')}:"
                f" {words(FAILURE_WORDS, reason)}",
            )
            if entry.get("detail"):
                out.detail(str(entry.get("detail")))
            if reason in NEEDS_OWNER_OR_ROOT:
                out.detail("only the user it runs as, or root, can stop it")
            said = True
        for entry in recorded:
            out.line(INFO, _recorded_line(entry))
            said = True
        if hidden:
            noun = "listener" if hidden == 1 else "listeners"
            out.detail(f"{hidden} {noun} {out.app} never touches left alone (--verbose lists them)")
        elif not said:  # an empty heading would read as if the reset had silently failed
            out.line(OK, "reset: no daemon to stop and no record to repair")
        hint = reset.get("hint")
        if isinstance(hint, str):
            out.detail(hint)
    if unstick is not None:
        out.line(OK if unstick.released else INFO, f"unstick lock: {unstick.message}")
    out.console.print()


def _crashed(out: _Out, section: SectionResult, verbose: bool) -> None:
    # Under --verbose the traceback is already on stderr: asking for --verbose again is noise.
    hint = " (traceback on stderr)" if verbose else " (re-run with --verbose for details)"
    out.line(BAD, f"crashed: {section.error}{hint}")


def _ranges(report: Report) -> str:
    return ", ".join(
        f"{family} {start}-{stop}"
        for family in report.families
        if (rng := report.ranges.get(family)) is not None
        for start, stop in [rng]
    )


def render(
    report: Report, console: Console, *, verbose: bool = False, width: int | None = None
) -> None:
    """Print the whole human report: repairs (if any), seven sections, the closing count line.

    `width` wraps every line there (at spaces, with a hanging indent); None prints each report
    line as one line, for pipes and files."""
    out = _Out(console, width, report.brand.app)
    out.emit(
        Text(f"{terminal_safe(report.brand.tool)} {report.tool_version}", style="bold"),
        Text(f"  home {terminal_safe(report.home.path)}", style="dim"),
        2,
    )
    if _mistyped(report.home):
        out.line(BAD, f"home {report.home.path} does not exist (from --home): check the path", 0)
    if report.ranges:
        out.emit(Text("  "), Text(f"scanned ports {_ranges(report)}", style="dim"), 4)
    console.print()
    _repairs(out, report, verbose)
    by_name = {s.name: s for s in report.sections}
    for name in SectionName:
        out.heading(name.heading)
        section = by_name.get(name)
        if section is not None and section.status is SectionStatus.CRASHED:
            _crashed(out, section, verbose)
            continue
        if name is SectionName.IDENTITY and report.identity is not None:
            _identity(out, report.identity, report.home)
        elif name is SectionName.TOKENS and report.tokens is not None:
            _tokens(out, report.tokens)
        elif name is SectionName.STORAGE and report.storage is not None:
            _storage(out, report.storage)
        elif name is SectionName.REFRESH_LOCK and report.refresh_lock is not None:
            _lock(out, report.refresh_lock)
        elif name is SectionName.DAEMONS and report.daemons is not None:
            _daemons(out, report.daemons)
        elif name is SectionName.ORPHANS and report.orphans is not None:
            _orphans(out, report.orphans, verbose)
        elif name is SectionName.FINDINGS:
            _findings(out, report.findings)
    critical, warn, info = report.counts()
    console.print()
    warnings = "warning" if warn == 1 else "warnings"
    style = "red" if critical else ("yellow" if warn else "green")
    console.print(Text(f"{critical} critical, {warn} {warnings}, {info} info", style=style))
