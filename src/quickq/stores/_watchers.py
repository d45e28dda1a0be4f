"""Watches for the stores that commit in this process (memory, SQLite).

A :class:`Watchers` holds the tasks waiting for a key to change
(``wait_for_change``, :class:`~quickq.stores.SupportsWatch`) and wakes them
when a commit writes or clears the key. The store decides when a waiter has
already seen a change (the memory store under its lock, the SQLite store by a
point read and polling); this module only keeps the waiters.
"""

from __future__ import annotations

from collections.abc import Iterable

import anyio

from ._protocol import Range


class Watchers(dict[bytes, set[anyio.Event]]):
    """The events of the tasks waiting on each key (a key with none is absent).

    Not thread-safe by itself: a store that commits from several threads
    calls it under its own lock.
    """

    __slots__ = ()

    def add(self, key: bytes) -> anyio.Event:
        """A new event, set by the next commit that writes or clears *key*."""
        event = anyio.Event()
        self.setdefault(key, set()).add(event)
        return event

    def discard(self, key: bytes, event: anyio.Event) -> None:
        """Forget *event* (the waiter is done, woken or not)."""
        waiting = self.get(key)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self[key]

    def wake(self, cleared: Iterable[Range], keys: Iterable[bytes]) -> None:
        """Wake the waiters on *keys* and on every key inside a *cleared* range."""
        if not self:
            return
        for key in keys:
            for event in self.pop(key, ()):
                event.set()
        for begin, end in cleared:
            for key in [k for k in self if begin <= k < end]:
                for event in self.pop(key):
                    event.set()
