"""Masking known secrets in text: the one implementation in kitty (issue 12).

The token endpoint masks the tokens it sent in whatever the server echoes back, and
kitty-doctor masks every secret its run has seen in its final output; both use ``SecretMask``.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MASK", "SecretMask"]

MASK: Final = "***"


class SecretMask:
    """The secrets seen so far; ``scrub`` replaces each occurrence with ``***``.

    ``min_chars`` ignores shorter strings (a caller collecting secrets from many sources uses it
    so that masking never mangles ordinary words); ``repr`` counts the secrets, never shows them.
    """

    __slots__ = ("_min_chars", "_secrets")

    def __init__(self, *secrets: str | None, min_chars: int = 1) -> None:
        self._min_chars = max(1, min_chars)
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and len(secret) >= self._min_chars:
                self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._secrets)} secrets)"
