"""The clock of transaction ages: the running event loop's, else monotonic time."""

from __future__ import annotations

import asyncio
import time

import trio


def loop_time() -> float:
    """``anyio.current_time()``, without its backend lookup (read on every
    transaction operation); ``time.monotonic()`` outside an event loop."""
    try:
        return trio.current_time()
    except RuntimeError:
        pass
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
