"""What an operator reviews about one listener before consenting to stop it (issue 15).

One implementation for the Orphans section and the `--reset` y/N prompt: a headline (family,
port, pid, version, verdict and why, in words) and detail lines (owner, age, root and whether it
still exists, the command line). Input is an orphan entry of the report (`to_dict()` of the
classified record plus the `process` facts the collector added); output is plain text that the
caller makes terminal-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ._durations import humanize_age
from ._vocabulary import CLASS_WORDS, why, words

Entry = Mapping[str, object]
#: One listener (or recorded daemon) as the consent prompt shows it: headline, review lines.
Candidate = tuple[str, tuple[str, ...]]


def _text(rec: Mapping[str, object], key: str) -> str | None:
    value = rec.get(key)
    return value if isinstance(value, str) else None


def _process(rec: Entry) -> Mapping[str, object]:
    process = rec.get("process")
    return process if isinstance(process, Mapping) else {}


def owner(rec: Entry) -> str:
    process = _process(rec)
    user, uid = process.get("user"), process.get("uid")
    return str(user) if user else ("?" if uid is None else f"uid {uid}")


def is_yours(rec: Entry) -> bool:
    """False only when the OS shows the process running as another user (and we are not root):
    nothing this user runs can stop it, so it is information, not a recommendation."""
    return _process(rec).get("yours") is not False


def other_home(rec: Entry) -> str | None:
    """The home a `cross_root` daemon was started from, when that home still exists: the doctor
    of that home is the one to clean it up (`--home <it> --reset`), not `--force` from here."""
    if rec.get("skip_reason") != "cross_root" or rec.get("cleanup_class") != "operator_required":
        return None
    process = _process(rec)
    root = _text(process, "root")
    if root is None or process.get("root_exists") is not True:
        return None
    path = Path(root)
    # A daemon root is `<home>/daemon`; anything else does not name a home we could pass on.
    return str(path.parent) if path.name == "daemon" else None


def reason(rec: Entry, app: str = "kitty") -> str:
    """Why the listener has its class, in plain words (`app`: whose daemons these are)."""
    evidence = rec.get("evidence")
    return why(
        _text(rec, "skip_reason"),
        [str(e) for e in evidence] if isinstance(evidence, list | tuple) else [],
        app,
    )


def verdict(rec: Entry, app: str = "kitty") -> str:
    klass = rec.get("cleanup_class")
    if not is_yours(rec):
        return f"not yours (owner {owner(rec)})"
    if klass == "safe_auto":
        return words(CLASS_WORDS, klass, app)
    return f"{words(CLASS_WORDS, klass, app)}: {reason(rec, app)}"


def headline(family: str, rec: Entry, app: str = "kitty") -> str:
    pid = rec.get("pid")
    version = rec.get("package_version")
    return (
        f"{family} port {rec.get('port')} pid {'?' if pid is None else pid}"
        + ("" if version is None else f" v{version}")
        + f": {verdict(rec, app)}"
    )


def details(rec: Entry) -> list[str]:
    """Owner, age, root (and whether it still exists), the command line; nothing unknown is
    guessed (a listener whose pid the OS hides has no details)."""
    process = _process(rec)
    if not process:
        return []
    facts = [f"owner {owner(rec)}"]
    age = process.get("age_s")
    if isinstance(age, int | float):
        facts.append(f"up {humanize_age(float(age))}")
    root = _text(process, "root")
    if root is not None:
        exists = process.get("root_exists")
        state = "exists" if exists is True else ("no longer exists" if exists is False else "?")
        facts.append(f"root {root} ({state})")
    else:
        facts.append("no root marker")
    out = [", ".join(facts)]
    cmdline = process.get("cmdline")
    out.append(f"command {cmdline}" if cmdline else "command line unreadable")
    home = other_home(rec)
    if home is not None:
        out.append(f"its home {home} still exists: clean it up from there (--home {home})")
    return out
