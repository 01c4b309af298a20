"""Strict JSON decoding shared by the health parser and the state-record reader."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DuplicateKeyError", "loads_strict"]


class DuplicateKeyError(ValueError):
    """An object in the document repeats a key (ambiguous: which value would a reader see?)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKeyError(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON; accepting them would let a float field hold a non-number.
    raise ValueError(f"non-finite number {name} is not JSON")


def loads_strict(text: str) -> Any:
    """``json.loads`` rejecting NaN/Infinity and duplicate keys (raises ValueError subclasses)."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
