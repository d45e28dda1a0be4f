"""Starting each job's lease extender when its first renewal comes due.

Every running job gets its own extender task, in the job's own task group, so
cancelling the job's scope reliably stops its extension. But most jobs end
long before a third of their lease has passed, and spawning an extender only
to cancel it unused was a quarter of the consumer's cost per job. So the
extender is started late: one schedule per consumer holds each job's first
renewal time and, when it comes, starts that job's extender in that job's
task group. A job that ends first withdraws its entry, and never had one.

Every entry is due a fixed delay after it is added, so the schedule is a FIFO:
one task sleeps until the oldest entry is due.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import anyio


class Renewal:
    """One job's entry in the schedule: its extender's start, unless withdrawn."""

    __slots__ = ("due", "start")

    def __init__(self, due: float, start: Callable[[], object]) -> None:
        self.due = due
        self.start: Callable[[], object] | None = start

    def withdraw(self) -> None:
        """The job is ending: never start its extender (call before its scope closes)."""
        self.start = None


class RenewalSchedule:
    """Starts extenders *delay* seconds after their jobs were scheduled."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._entries: deque[Renewal] = deque()
        self._added = anyio.Event()

    def schedule(self, start: Callable[[], object]) -> Renewal:
        """Call *start* (which starts the job's extender) after the delay."""
        entry = Renewal(anyio.current_time() + self._delay, start)
        self._entries.append(entry)
        self._added.set()
        return entry

    async def run(self) -> None:
        entries = self._entries
        while True:
            if not entries:
                self._added = anyio.Event()
                await self._added.wait()
                continue
            wait = entries[0].due - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            start = entries.popleft().start
            if start is not None:
                start()
