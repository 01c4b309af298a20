"""Last line of defence for DOC-11: scrub every secret the run has seen from the final output.

The collectors never put a token into the report, and the libraries promise token-free messages;
this catches anything that slips through anyway (an exception message, a holder's command line).
The masking itself is kitty-auth-refresh's ``SecretMask`` (one implementation, issue 12).
"""

from __future__ import annotations

from typing import Final

from kitty_auth_refresh import MASK, SecretMask

__all__ = ["MASK", "Redactor"]

_MIN_SECRET_CHARS: Final = 8
"""Shorter strings are not real tokens, and scrubbing them would mangle ordinary text."""


class Redactor(SecretMask):
    """Every secret of one doctor run (tokens, keys, client secrets of at least 8 characters)."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(min_chars=_MIN_SECRET_CHARS)
