"""Last line of defence for DOC-11: scrub every secret the run has seen from the final output.

The collectors never put a token into the report, and the libraries promise token-free messages;
this catches anything that slips through anyway (an exception message, a holder's command line).
"""

from __future__ import annotations

from typing import Final

_MIN_SECRET_CHARS: Final = 8
"""Shorter strings are not real tokens, and scrubbing them would mangle ordinary text."""
MASK: Final = "***"


class Redactor:
    __slots__ = ("_secrets",)

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= _MIN_SECRET_CHARS:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        # Longest first so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
