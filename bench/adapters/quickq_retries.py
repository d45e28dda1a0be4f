"""Counting quickq's transaction retries from the outside (issue 12's retry counts).

:func:`count_retries` replaces a store object's ``transact`` (the one call
through which quickq runs every transaction body in a retry loop) with one
that runs the same body through the original, counting how many times the
body ran. Nothing else changes: the store is the same object, so
``isinstance(store, SupportsWatch)`` and every other method are as before.
Which side a transaction belongs to is a context variable that the
producer sets around its calls (:func:`enqueue_side`); the consumer's tasks,
started before, see the default.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
SIDES = ("enqueue", "consumer")
_SIDE: contextvars.ContextVar[str] = contextvars.ContextVar("quickq_bench_side", default="consumer")


class RetryCounts:
    """Per side: transactions run, transactions retried, and body re-runs."""

    def __init__(self) -> None:
        self.txns = dict.fromkeys(SIDES, 0)
        self.retried = dict.fromkeys(SIDES, 0)
        self.retries = dict.fromkeys(SIDES, 0)

    def add(self, side: str, runs: int) -> None:
        if runs == 0:  # cancelled before the body ran: no transaction to count
            return
        self.txns[side] += 1
        self.retries[side] += runs - 1
        self.retried[side] += runs > 1

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for side in SIDES:
            out[f"{side}_txns"] = self.txns[side]
            out[f"{side}_retried"] = self.retried[side]
            out[f"{side}_retries"] = self.retries[side]
        return out

    def merge(self, other: dict[str, Any]) -> None:
        """Add counts from another process's :meth:`metrics`."""
        for side in SIDES:
            self.txns[side] += int(other.get(f"{side}_txns", 0))
            self.retried[side] += int(other.get(f"{side}_retried", 0))
            self.retries[side] += int(other.get(f"{side}_retries", 0))


def note(m: dict[str, Any]) -> str:
    return "retried transactions (bodies re-run): " + ", ".join(
        f"{side} {m[f'{side}_retried']:,} of {m[f'{side}_txns']:,} ({m[f'{side}_retries']:,})"
        for side in SIDES
    )


def count_retries(store: Any) -> RetryCounts:
    """Count the body runs of every ``store.transact`` call from now on."""
    counts = RetryCounts()
    inner: Callable[[Callable[[Any], Awaitable[Any]]], Awaitable[Any]] = store.transact

    async def transact(fn: Callable[[Any], Awaitable[T]]) -> T:
        runs = 0

        async def body(tr: Any) -> T:
            nonlocal runs
            runs += 1
            return await fn(tr)

        side = _SIDE.get()
        try:
            return await inner(body)  # type: ignore[no-any-return]
        finally:
            counts.add(side, runs)

    store.transact = transact
    return counts


@contextlib.contextmanager
def enqueue_side() -> Iterator[None]:
    """Count the transactions run inside as the producer's."""
    token = _SIDE.set("enqueue")
    try:
        yield
    finally:
        _SIDE.reset(token)
