"""Durable time: integer milliseconds since the epoch, from an injectable clock.

Tests drive the clock from trio's ``MockClock`` (``lambda: EPOCH + trio.current_time()``)
so leases, delays and backoff are checked exactly, in virtual time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

Clock = Callable[[], float]
"""A wall clock: seconds since the Unix epoch."""


def wall_clock() -> float:
    """The default clock: the system's wall time."""
    return time.time()


def to_ms(seconds: float) -> int:
    """Seconds (since the epoch, or a duration) as whole milliseconds."""
    return round(seconds * 1000)


def ms_to_datetime(ms: int) -> dt.datetime:
    """Milliseconds since the epoch as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
