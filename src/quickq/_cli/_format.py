"""Short text for times, durations and values in the command line's output."""

from __future__ import annotations

import datetime as dt


def age(seconds: float | None) -> str:
    """A short duration: ``850ms``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h``."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def when(moment: dt.datetime, now: dt.datetime) -> str:
    """A time relative to *now*: ``in 4.0s`` or ``12.3s ago``."""
    delta = (moment - now).total_seconds()
    return f"in {age(delta)}" if delta > 0 else f"{age(-delta)} ago"


def clip(text: str, width: int) -> str:
    """*text* on one line, cut to *width* characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
