"""Human durations (DOC-03)."""

from __future__ import annotations

from typing import Final

_MINUTE_S: Final = 60.0
_HOUR_S: Final = 3600.0
_DAY_S: Final = 86400.0
_EXACT_AGE_LIMIT_S: Final = 600.0


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def humanize_remaining(seconds: float) -> str:
    """`expired`, `< 1 minute`, `N minute(s)`, `N hour(s)` or `N day(s)` (whole units, floored)."""
    if seconds <= 0:
        return "expired"
    if seconds < _MINUTE_S:
        return "< 1 minute"
    if seconds < _HOUR_S:
        return _plural(int(seconds // _MINUTE_S), "minute")
    if seconds < _DAY_S:
        return _plural(int(seconds // _HOUR_S), "hour")
    return _plural(int(seconds // _DAY_S), "day")


def humanize_age(seconds: float) -> str:
    """An age ("held for ...") uses the same units; zero is "< 1 minute", never "expired"."""
    return humanize_remaining(max(seconds, 0.001))


def exact_age(seconds: float) -> str:
    """An age that is compared with a limit ("22 s, longer than its max hold of 10 s"): whole
    seconds while they can be compared, the units of `humanize_age` beyond ten minutes."""
    return f"{max(seconds, 0.0):.0f} s" if seconds < _EXACT_AGE_LIMIT_S else humanize_age(seconds)
