"""SecretMask: the one masking of known secrets (the token endpoint's and the doctor's)."""

from __future__ import annotations

from kitty_auth_refresh import MASK, SecretMask
from kitty_auth_refresh._endpoint import scrub


def test_longest_secret_first_and_every_occurrence() -> None:
    mask = SecretMask("abc123", "abc123xyz")
    assert mask.scrub("abc123xyz and abc123, abc123") == f"{MASK} and {MASK}, {MASK}"


def test_short_strings_are_ignored_only_when_asked() -> None:
    strict = SecretMask(min_chars=8)
    strict.add("short", None, "", "a-long-token")
    assert strict.scrub("short a-long-token") == f"short {MASK}"
    assert SecretMask("short").scrub("short") == MASK


def test_repr_counts_and_never_shows_a_secret() -> None:
    mask = SecretMask("s3cr3t-value", "another-one")
    assert repr(mask) == "SecretMask(2 secrets)"
    assert "s3cr3t" not in repr(mask)


def test_the_endpoint_masks_echoed_tokens_and_cuts_server_text() -> None:
    assert scrub("bad token rt-123456 here", "rt-123456") == f"bad token {MASK} here"
    assert scrub("x" * 500) == "x" * 200
    assert scrub(None) is None
    assert scrub(42) is None
