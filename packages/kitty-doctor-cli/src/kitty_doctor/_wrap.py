"""Word wrapping for narrow terminals (issue 15): break only at spaces, never inside a word.

A path, an e-mail address or a command is copied from the report: splitting one at the edge of
a 40-column terminal (or at a hyphen, as `textwrap` would) makes it wrong when pasted. A word
longer than the line gets a line of its own, whole, and the terminal shows it as it can.
"""

from __future__ import annotations

import itertools
import re
from typing import Final

_WORD: Final = re.compile(r"\S+")


def break_offsets(text: str, first: int, rest: int | None = None) -> list[int]:
    """Offsets at which to split `text` so that the first line fits `first` columns and every
    other line `rest` (default: `first`); only ever at the start of a word."""
    rest = first if rest is None else rest
    offsets: list[int] = []
    start, width = 0, first
    for match in _WORD.finditer(text):
        if (
            match.end() - start > width
            and match.start() > start
            and text[start : match.start()].strip()
        ):
            offsets.append(match.start())
            start, width = match.start(), rest
    return offsets


def wrap_lines(text: str, first: int, rest: int | None = None) -> list[str]:
    """`text` as lines (see `break_offsets`), trailing spaces removed."""
    bounds = [0, *break_offsets(text, first, rest), len(text)]
    return [text[a:b].rstrip() for a, b in itertools.pairwise(bounds)]
