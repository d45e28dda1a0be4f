"""Watches for the stores that commit in this process (memory, SQLite).

A :class:`Watchers` holds the tasks waiting for a key to change
(``wait_for_change``, :class:`~quickq.stores.SupportsWatch`) and wakes them
when a commit writes or clears the key. The store decides when a waiter has
already seen a change (the memory store under its lock, the SQLite store by a
point read and polling); this module only keeps the waiters.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping

import anyio

from ._protocol import Range, Store, SupportsWatch, SupportsWatchMany


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

    def add_many(self, keys: Iterable[bytes]) -> anyio.Event:
        """A new event, set by the next commit that writes or clears any of *keys*."""
        event = anyio.Event()
        for key in keys:
            self.setdefault(key, set()).add(event)
        return event

    def discard_many(self, keys: Iterable[bytes], event: anyio.Event) -> None:
        """Forget *event*, registered on *keys* by :meth:`add_many`."""
        for key in keys:
            self.discard(key, event)

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


def any_change_waiter(
    store: Store,
) -> Callable[[Mapping[bytes, bytes | None]], Awaitable[None]] | None:
    """How to wait on *store* until the value at any key of a mapping differs
    from its value there (None: the store cannot watch). Decided once per
    store: checking a runtime protocol costs tens of microseconds a call.

    The waiter may return spuriously; callers bound it with a cancel scope. A
    store that can (``SupportsWatchMany``) does it with one watch. A store
    that wakes this module's :class:`Watchers` at its commits (the SQLite
    store) gets one event on every key and one read of them all, then a
    re-read every ``poll_interval`` seconds for commits of other processes.
    Any other :class:`~quickq.stores.SupportsWatch` store watches each key.
    """
    if isinstance(store, SupportsWatchMany):
        return store.wait_for_any_change
    watchers = getattr(store, "_watchers", None)
    if isinstance(watchers, Watchers):
        return functools.partial(_wait_local, store, watchers, getattr(store, "poll_interval", 0.1))
    if isinstance(store, SupportsWatch):
        return functools.partial(_wait_each, store)
    return None


async def _wait_local(
    store: Store, watchers: Watchers, poll: float, seen: Mapping[bytes, bytes | None]
) -> None:
    while True:
        # Register before reading, so that a commit in between is not missed.
        event = watchers.add_many(seen)
        try:
            if await _changed(store, seen):
                return
            with anyio.move_on_after(poll):
                await event.wait()
            if event.is_set():
                return
        finally:
            watchers.discard_many(seen, event)


async def _wait_each(store: SupportsWatch, seen: Mapping[bytes, bytes | None]) -> None:
    async with anyio.create_task_group() as tg:

        async def watch(key: bytes, value: bytes | None) -> None:
            await store.wait_for_change(key, value)
            tg.cancel_scope.cancel()

        for key, value in seen.items():
            tg.start_soon(watch, key, value)


async def _changed(store: Store, seen: Mapping[bytes, bytes | None]) -> bool:
    """Whether any key of *seen* holds another value now: one snapshot range
    read from the first key to the last (callers watch keys side by side)."""
    tr = store.create_transaction()
    try:
        rows = dict(await tr.get_range(min(seen), max(seen) + b"\x00", snapshot=True))
    finally:
        tr.cancel()
    return any(rows.get(key) != value for key, value in seen.items())
