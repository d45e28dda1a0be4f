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


_MIN = dt.datetime.min.replace(tzinfo=dt.UTC)
_MAX = dt.datetime.max.replace(tzinfo=dt.UTC)


def ms_to_datetime(ms: int) -> dt.datetime:
    """Milliseconds since the epoch as an aware UTC datetime.

    A time no datetime can hold (only a record written before quickq bounded
    its times could have one) reads as the earliest or latest datetime, so
    that one record never makes a listing fail.
    """
    try:
        return _EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError:
        return _MIN if ms < 0 else _MAX


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
