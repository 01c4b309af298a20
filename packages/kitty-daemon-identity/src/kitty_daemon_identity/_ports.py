"""Half-open port ranges: the one value type for every family's range."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from kitty_filelock import frozen_dataclass

__all__ = ["PortRange"]

_MIN_PORT: Final = 1
_MAX_STOP: Final = 65536  # half-open: stop may be one past the last valid port


@frozen_dataclass
class PortRange:
    """Half-open port interval ``[start, stop)``."""

    start: int
    stop: int

    def __post_init__(self) -> None:
        for name in ("start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"PortRange {name} must be an int, got {value!r}")
        if not (_MIN_PORT <= self.start < self.stop <= _MAX_STOP):
            raise ValueError(
                f"port range {self.start}-{self.stop} is invalid: need "
                f"{_MIN_PORT} <= start < stop <= {_MAX_STOP} (half-open, e.g. 9400-9450)"
            )

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """Parse ``"START-STOP"`` (half-open); raise ``ValueError`` naming the text otherwise."""
        start_text, sep, stop_text = text.strip().partition("-")
        if not sep:
            raise ValueError(f"port range {text!r} is not START-STOP (e.g. 9400-9450)")
        try:
            start, stop = int(start_text, 10), int(stop_text, 10)
        except ValueError:
            raise ValueError(
                f"port range {text!r} is not START-STOP with integers (e.g. 9400-9450)"
            ) from None
        return cls(start, stop)

    def overlaps(self, other: PortRange) -> bool:
        return self.start < other.stop and other.start < self.stop

    def __contains__(self, port: object) -> bool:
        if isinstance(port, bool) or not isinstance(port, int):
            return False
        return self.start <= port < self.stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"{self.start}-{self.stop}"
