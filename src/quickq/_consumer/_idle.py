"""Knowing when a consumer is idle, and waking its scanner.

``wait_idle()`` returns once a scan that started after the call found nothing
to do while no job was running. The scanner sleeps between scans until work
may be due; a :class:`Wakeup` cuts that sleep short (a job given back or
retried, the last job's end while someone waits for idleness).
"""

from __future__ import annotations

import anyio


class Wakeup:
    """Wakes the scanner from its current wait (a wake before the wait is moot)."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    def arm(self) -> anyio.Event:
        """A fresh event for the wait about to begin."""
        self._event = anyio.Event()
        return self._event


class IdleTracker:
    """Counts running jobs and scans, and answers ``wait_idle``."""

    def __init__(self, wakeup: Wakeup) -> None:
        self.running = 0
        """Jobs leased and not yet settled."""
        self._wakeup = wakeup
        self._scans_started = 0
        self._last_idle_scan = -1  # the number of the last scan that found nothing to do
        self._scanned = anyio.Event()  # set (and replaced) at the end of every scan
        self._waiters = 0  # tasks in wait_idle(): the last job's end makes the scanner look

    def job_started(self) -> None:
        self.running += 1

    def job_ended(self) -> None:
        self.running -= 1
        if self.running == 0 and self._waiters:
            self._wakeup.set()  # let the scanner look again, and notice idleness

    def scan_started(self) -> int:
        """The new scan's number."""
        self._scans_started += 1
        return self._scans_started

    def scan_ended(self, number: int, *, found: bool) -> None:
        if not found and self.running == 0:
            self._last_idle_scan = number
        self._scanned.set()
        self._scanned = anyio.Event()

    async def wait_idle(self) -> None:
        after = self._scans_started  # only a scan that starts from now on counts
        self._waiters += 1
        try:
            while self._last_idle_scan <= after:
                scanned = self._scanned
                # With jobs running, the last one's end wakes the scanner: waking
                # it now would only spin scans that cannot find the consumer idle.
                if self.running == 0:
                    self._wakeup.set()
                await scanned.wait()
        finally:
            self._waiters -= 1
