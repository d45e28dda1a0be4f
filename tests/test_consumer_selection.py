"""Consumers spread over due queues (QuiCK's random selection), so they do not
all race for the same queue leases.

Each consumer talks to the shared memory store through its own view that
records the queue whose lease the consumer tries to take first, and refuses
it (the scan fails and backs off). Nobody ever holds a queue lease, so every
consumer's first scan sees the same due queues, however the scans interleave:
their first choices are the consumers' own draws, and nothing else.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

import quickq
from quickq import StoreUnavailableError
from quickq._core import Layout
from quickq.stores import MemoryStore, Transaction

from ._stores import run_virtual, virtual_clock

T = TypeVar("T")
QUEUES = [f"q{n:02}" for n in range(50)]
CONSUMERS = 20
layout = Layout()
_POINTERS = {layout.queue_pointer(qid): qid for qid in QUEUES}


class _Choosing:
    """A transaction whose read of a queue's pointer (taking its lease) is refused."""

    def __init__(self, tr: Transaction, chosen: list[str]) -> None:
        self._tr = tr
        self._chosen = chosen

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        if not snapshot and key in _POINTERS:
            self._chosen.append(_POINTERS[key])
            raise StoreUnavailableError("the test refuses every queue lease")
        return await self._tr.get(key, snapshot=snapshot)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tr, name)


class ChoiceRecorder:
    """One consumer's view of the shared store (see the module docstring)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.chosen: list[str] = []

    def create_transaction(self) -> Transaction:
        return _Choosing(self._store.create_transaction(), self.chosen)

    async def transact(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        return await self._store.transact(lambda tr: fn(_Choosing(tr, self.chosen)))

    async def aclose(self) -> None:
        pass


def test_consumers_first_choices_of_due_queues_spread() -> None:
    """20 consumers, 50 due queues, one queue each per scan: if every consumer
    chose the first due queue, or drew from a generator seeded alike, all
    first choices would be equal. Drawn at random, all 20 are equal with
    probability 50 x 50**-20 (about 1e-32): this cannot flake."""
    jobs = quickq.JobRegistry()

    @jobs.job("noop")
    async def noop(payload: Any, meta: quickq.JobMeta) -> None:
        pass  # never runs: every queue lease is refused

    async def main() -> list[list[str]]:
        store = MemoryStore()
        queue = quickq.JobQueue(store, jobs, clock=virtual_clock)
        for qid in QUEUES:
            await queue.enqueue(qid, "noop", None)
        views = [ChoiceRecorder(store) for _ in range(CONSUMERS)]
        async with trio.open_nursery() as nursery:

            async def consume(view: ChoiceRecorder) -> None:
                async with quickq.open_consumer(
                    view,
                    jobs,
                    clock=virtual_clock,
                    concurrency=1,
                    batch_size=1,
                ):
                    with trio.move_on_after(5):
                        while not view.chosen:  # noqa: ASYNC110
                            await trio.sleep(0.01)

            for view in views:
                nursery.start_soon(consume, view)
        return [view.chosen for view in views]

    chosen = run_virtual(main)
    assert all(chosen), "a consumer never tried to take a queue lease"
    firsts = [c[0] for c in chosen]
    assert len(set(firsts)) > 1, f"every consumer chose {firsts[0]} first"
