"""Plain words for the libraries' closed vocabularies (issue 15).

The JSON report keeps the exact enum values (`cross_root`, `http_shutdown`, ...): scripts match
on them. A person reading the human report should not have to know them, so every value the
renderer or the consent prompt shows goes through one of these tables first. An unknown value
(a newer library) is shown as it is rather than hidden. `{app}` in a table's words is the
application's name (kitty's, or the app's that embeds the doctor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

CLASS_WORDS: Final[Mapping[str, str]] = {
    "safe_auto": "{app}'s own, safe to stop",
    "operator_required": "needs your review",
    "never_touch": "never touched",
}

_NEVER_TOUCH_WHY: Final[Mapping[str, str]] = {
    "out_of_range": "outside this family's port range",
    "other_family": "a daemon of another family",
    "third_party": "not {a_app} daemon",
    "not_kitty": "not {a_app} daemon (no {app} health answer)",
    "is_recorded_singleton": "the recorded daemon of this home",
    "other_home_singleton": "the running daemon of another home",
}

_REVIEW_WHY: Final[Mapping[str, str]] = {
    "pre_marker": "no {app} marker: started before {app} 0.1, or by hand",
    "missing_pid": "the OS does not say which process listens on this port",
    "argv_unreadable": "its command line cannot be read (another user's, or exiting)",
    "other_namespace": "it reports another scope (another boot, PID namespace or user)",
    "pid_port_mismatch": "it claims a different pid or port than the OS shows",
    "create_time_mismatch": "its start time differs from the OS's (the pid may be reused)",
}


def why(reason: str | None, evidence: Sequence[str] = (), app: str = "kitty") -> str:
    """Why a listener is not `safe_auto`, in words; its `evidence` refines the reason."""
    if reason is None:
        return f"proven to be {app}'s own daemon of this home"
    if reason == "cross_root":
        if "root_missing" in evidence:
            return "started from a home that no longer exists"
        if "root_marker:conflict" in evidence:
            return "its command line names two different homes"
        if "root_marker:empty" in evidence:
            return f"its {app} marker names no home"
        return "started from another home"
    if reason == "unresponsive":
        # The scan's own budgets: what "not answering" waited for. Imported here, not at the top:
        # every report that has such a listener already loaded kitty-orphan-sweep to scan it.
        from kitty_orphan_sweep import CONNECT_TIMEOUT_S, HEALTH_TIMEOUT_S

        if "connect_suspect" in evidence:
            return f"not accepting connections for {CONNECT_TIMEOUT_S:g} s"
        if "health_timeout" in evidence:
            return f"not answering for {HEALTH_TIMEOUT_S:g} s"
        return f"answers, but not with a valid {app} health reply"
    text = _REVIEW_WHY.get(reason) or _NEVER_TOUCH_WHY.get(reason)
    return reason if text is None else branded(text, app)


CLEANUP_PATH_WORDS: Final[Mapping[str, str]] = {
    "http_shutdown": "stopped (it shut down when asked)",
    "terminate": "stopped with SIGTERM",
    "kill": "killed with SIGKILL",
    "already_gone": "already gone",
}

FAILURE_WORDS: Final[Mapping[str, str]] = {
    "pid_reused": "its pid now belongs to another process; left alone",
    "identity_changed": "it is not the process that was scanned any more; left alone",
    "refused_self": "it is this doctor or one of its parents",
    "access_denied_on_terminate": "permission denied: it runs as another user",
    "access_denied_on_kill": "permission denied: it runs as another user",
    "still_alive_after_kill": "still alive after SIGKILL",
    "process_gone_but_port_still_listening": "gone, but something still listens on its port",
    "no_pid_and_http_shutdown_failed": "its pid is unknown and it did not shut down when asked",
    "socket_not_owned": "the OS shows its port owned by another process or user; no key sent",
    "unknown_failure": "could not be stopped",
}

#: Failures only another user (the process's owner) or root can get past.
NEEDS_OWNER_OR_ROOT: Final = frozenset({"access_denied_on_terminate", "access_denied_on_kill"})

HOLDER_SOURCE_WORDS: Final[Mapping[str, str]] = {
    "proc_locks": "the kernel's lock table",
    "f_getlk": "the kernel (F_GETLK)",
    "registry": "this process",
    "record": "its record (the kernel table does not list it)",
}


def words(table: Mapping[str, str], value: object, app: str = "kitty") -> str:
    """`table[value]` (with `{app}` filled in), or the value itself when the table does not
    know it."""
    text = "?" if value is None else str(value)
    known = table.get(text)
    return text if known is None else branded(known, app)


def a_app(app: str) -> str:
    """`app` with its indefinite article: "a kitty", "an acme"."""
    return ("an " if app[:1] in "aeiou" else "a ") + app


def branded(text: str, app: str) -> str:
    """`text` with `{app}` and `{a_app}` filled in."""
    return text.format(app=app, a_app=a_app(app))
