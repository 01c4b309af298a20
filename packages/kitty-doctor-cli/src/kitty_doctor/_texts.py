"""Finding texts: one template per finding ID, filled from the finding's structured fields.

A finding's summary is `FINDING_TEXTS[id]` formatted with its `params` (and `app`, the
application's name). An application embedding the doctor re-words any finding by passing its own
template for that ID (`texts={"KD101": "..."}`); IDs, names and the JSON document stay the same.
A template may use only the fields its default uses: `check_texts` says which, before any run.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

FINDING_TEXTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "KD101": "no {app} session at {path}",
        "KD102": "session file is {state} ({reason})",
        "KD103": "session expired: the refresh token is past its lifetime",
        "KD104": "access token expired; the refresh token is still valid",
        "KD105": "session storage is not private: {problems}",
        "KD106": "session file exists but cannot be read ({reason}); it is not corrupt, so keep it",
        "KD201": "refresh lock {held_by} for {age}, {because}",
        "KD202": "stale lock record from pid {pid} ({age} old); the lock is free",
        "KD203": "refresh lock is on a network filesystem ({fs_type}, mode {mode}):"
        " cross-host exclusion depends on the server's lock support",
        "KD204": "lock record written by host {host}, not {this_host}:"
        " the home is shared between machines",
        "KD301": "{family} daemon pid {pid} runs {running}, expected {expected}",
        "KD302": "{family} daemon pid {pid} on port {port} is alive but unhealthy ({error})",
        "KD303": "{family} state record names pid {pid}, which is {what}",
        "KD304": "scope key {path} is readable by others or not yours; daemons ignore it",
        "KD305": "{family} port {port} is not answered by the recorded daemon pid {pid}: {error};"
        " that listener is an impostor and gets nothing from {app}",
        "KD401": "{count} orphan {noun} {app} can stop safely (port {ports})",
        "KD402": "{count} {noun} {app} cannot prove safe to stop ({listeners})",
        "KD403": "{count} {noun} started from another home that still exists ({home};"
        " port {ports})",
        "KD901": "the {section} section crashed: {error}",
    }
)

Params = Mapping[str, str | int | float]


def _parsed(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    """(literal, field, spec, conversion) per part, as str.format reads the template."""
    import string  # here: only an app's own re-wording is parsed (string costs ~1.5 ms to load)

    return list(string.Formatter().parse(template))


def fields_of(template: str) -> frozenset[str]:
    """The `{field}` names a template uses."""
    return frozenset(name for _, name, _, _ in _parsed(template) if name)


def check_texts(texts: Mapping[str, str]) -> dict[str, str]:
    """`texts` as a plain dict, or ValueError naming the unknown ID or field (and the fields
    that ID offers), so a bad re-wording fails when the app starts, not in a user's report."""
    checked: dict[str, str] = {}
    for finding_id, template in texts.items():
        default = FINDING_TEXTS.get(finding_id)
        if default is None:
            known = ", ".join(FINDING_TEXTS)
            raise ValueError(f"no finding {finding_id!r} to re-word; the IDs are {known}")
        if not isinstance(template, str):
            raise ValueError(f"the text for {finding_id} must be a str, got {template!r}")
        try:
            unknown = fields_of(template) - fields_of(default) - {"app"}
        except ValueError as exc:  # a stray brace
            raise ValueError(f"the text for {finding_id} is not a template: {exc}") from None
        # A format spec or conversion could fail on a field's value at report time.
        styled = any(spec or conv for _, _, spec, conv in _parsed(template))
        if unknown or styled:
            offered = ", ".join(f"{{{name}}}" for name in sorted(fields_of(default) | {"app"}))
            used = ", ".join(sorted(unknown)) or "a format spec or conversion"
            raise ValueError(
                f"the text for {finding_id} uses {used}; it may use only {offered}, plainly"
            )
        checked[finding_id] = template
    return checked


def summary(finding_id: str, params: Params, texts: Mapping[str, str]) -> str:
    """The finding's text: the app's template for it, else the default, filled in."""
    template = texts.get(finding_id) or FINDING_TEXTS[finding_id]
    return template.format_map(params)
