"""Errors raised by kitty-doctor itself.

```
KittyDoctorError(Exception)
└── DoctorConfigError(KittyDoctorError, ValueError)   option, value — bad option or KITTY_* value
```

Errors from the libraries (`ConfigError`, `RangeConfigError`, ...) are mapped to exit code 2 by the
CLI shell; these classes cover what only the doctor can judge (for example `--force` without
`--reset`). Messages never contain a token or key.
"""

from __future__ import annotations


class KittyDoctorError(Exception):
    """Root of kitty-doctor's own errors."""


class DoctorConfigError(KittyDoctorError, ValueError):
    """An option or environment value the doctor cannot work with."""

    def __init__(self, option: str, value: str, fix: str) -> None:
        super().__init__(option, value, fix)
        self.option = option
        self.value = value
        self.fix = fix

    def __str__(self) -> str:
        return f"invalid {self.option} {self.value!r}: {self.fix}"


def current_traceback() -> str:
    """The traceback of the exception being handled, as text.

    ``traceback`` (with ``linecache`` and ``tokenize``, ~2 ms) is imported only once something
    has failed: a healthy run never needs it.
    """
    import traceback

    return traceback.format_exc()
