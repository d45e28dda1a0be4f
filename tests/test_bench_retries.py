"""The benchmark's retry counter (bench/adapters/quickq_retries.py): it counts
each transaction body run beyond the first, by side, and changes nothing else
about the store it wraps."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import trio

from quickq.stores import CommitFault, MemoryStore, SupportsWatch, Transaction

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench" / "adapters"))
# An adapter module: bench/adapters is its import root (as when the harness runs it).
retries = importlib.import_module("quickq_retries")
count_retries, enqueue_side = retries.count_retries, retries.enqueue_side


def test_counts_bodies_run_again_by_side() -> None:
    store = MemoryStore()
    counts = count_retries(store)
    assert isinstance(store, SupportsWatch)  # the consumer's check still holds

    async def put(tr: Transaction) -> int:
        tr.set(b"k", b"v")
        return 7

    async def main() -> None:
        store.inject(CommitFault.CONFLICT, CommitFault.CONFLICT)
        with enqueue_side():
            assert await store.transact(put) == 7  # run three times
        assert await store.transact(put) == 7  # once, on the consumer's side
        store.inject(CommitFault.CONFLICT)
        assert await store.transact(put) == 7  # twice

    trio.run(main)
    m = counts.metrics()
    assert (m["enqueue_txns"], m["enqueue_retried"], m["enqueue_retries"]) == (1, 1, 2)
    assert (m["consumer_txns"], m["consumer_retried"], m["consumer_retries"]) == (2, 1, 1)
    assert store.raw_get(b"k") == b"v"
