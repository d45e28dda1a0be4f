"""Handler slots: how many handlers may run at once, and how many do.

A job takes a slot when it is leased and frees it as soon as its handler
ends, while its outcome is still being committed: ``concurrency`` counts
handlers, not commits. The intake waits here for free slots.
"""

from __future__ import annotations

import anyio


class Slots:
    """``concurrency`` handler slots."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.busy = 0
        self._freed = anyio.Event()

    @property
    def free(self) -> int:
        return self.concurrency - self.busy

    def take(self) -> None:
        self.busy += 1

    def release(self) -> None:
        self.busy -= 1
        self._freed.set()

    async def wait_free(self, need: int) -> None:
        """Return once at least *need* slots are free."""
        while self.free < need:
            self._freed = anyio.Event()
            await self._freed.wait()
