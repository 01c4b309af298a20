"""The time seam: monotonic deadlines, wall-clock expiry and sleeping, swappable in tests."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from kitty_filelock import frozen_dataclass

from ._session import utc_now


@frozen_dataclass
class Clock:
    """``monotonic`` drives deadlines and durations; ``now`` drives token expiry (aware UTC)."""

    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], dt.datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()
