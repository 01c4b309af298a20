"""Terminal safety: text from outside kitty never reaches the terminal as control bytes.

A health payload, a command line, a lock record's host or label, a path and a server's error text
are all written by someone else: any local user can put ESC/OSC/BEL bytes in them (clear the
screen, write the clipboard with OSC 52, paint a fake "0 critical"). Every string the human
report prints passes through `terminal_safe`, which shows such characters as visible `\\xNN`
escapes instead of sending them. `--json` does not use this: JSON's own escaping is exact.
"""

from __future__ import annotations

from typing import Final

# C0 controls, DEL and C1 controls (0x9b is a one-byte CSI on some terminals), plus the Unicode
# bidirectional overrides that can make a line read differently from its bytes.
_UNSAFE: Final = (
    *range(0x20),
    0x7F,
    *range(0x80, 0xA0),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


_SINGLE_LINE: Final = str.maketrans({code: _escape(code) for code in _UNSAFE})
_MULTI_LINE: Final = str.maketrans({code: _escape(code) for code in _UNSAFE if code != 0x0A})


def terminal_safe(text: str, *, multiline: bool = False) -> str:
    """`text` with every control character made visible; `multiline` keeps line feeds."""
    return text.translate(_MULTI_LINE if multiline else _SINGLE_LINE)
