"""Store limits: transaction sizes as FoundationDB counts them, and quickq's
batches, records and errors inside them."""

from __future__ import annotations

import pytest

import quickq
from quickq.stores import Limits, MemoryStore
from quickq.stores._limits import MUTATION_BYTES, RANGE_BYTES

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def one_key(key: bytes) -> int:
    """A conflict range over one key, [k, k + NUL)."""
    return RANGE_BYTES + 2 * len(key) + 1


# -- the memory store counts as FoundationDB's getSize() does ---------------------


async def test_writes_count_mutations_write_conflicts_and_their_overhead() -> None:
    tr = MemoryStore().create_transaction()
    tr.set(b"key", b"value")
    expected = MUTATION_BYTES + 3 + 5 + one_key(b"key")
    assert tr._buffer.size == expected
    tr.clear(b"gone")  # a one-key range clear: [gone, gone + NUL)
    expected += MUTATION_BYTES + 2 * 4 + 1 + one_key(b"gone")
    assert tr._buffer.size == expected
    tr.add(b"n", 1)  # an 8-byte operand
    expected += MUTATION_BYTES + 1 + 8 + one_key(b"n")
    assert tr._buffer.size == expected
    tr.clear_range(b"a", b"b")
    expected += MUTATION_BYTES + 2 + RANGE_BYTES + 2
    assert tr._buffer.size == expected
    tr.cancel()


async def test_a_key_written_again_keeps_one_mutation_as_foundationdb_coalesces() -> None:
    tr = MemoryStore().create_transaction()
    for n in range(1000):
        tr.add(b"counter", n)
    assert tr._buffer.size == MUTATION_BYTES + 7 + 8 + one_key(b"counter")
    tr.set(b"counter", b"x" * 100)  # replaces the add: one mutation, one conflict
    assert tr._buffer.size == MUTATION_BYTES + 7 + 100 + one_key(b"counter")
    tr.cancel()


async def test_reads_count_their_conflict_ranges_split_around_own_writes() -> None:
    store = MemoryStore()
    store.raw_set(b"k1", b"v")
    tr = store.create_transaction()
    await tr.get(b"k1")
    assert tr._buffer.size == one_key(b"k1")
    await tr.get(b"k1", snapshot=True)  # snapshot reads take no conflict
    assert tr._buffer.size == one_key(b"k1")
    tr.add_read_conflict_range(b"a", b"z")
    assert tr._buffer.size == one_key(b"k1") + RANGE_BYTES + 2
    tr.cancel()

    tr = store.create_transaction()
    tr.set(b"m", b"")
    written = tr._buffer.size
    await tr.get_range(b"a", b"z")
    # FoundationDB conflicts on [a, m) and [m + NUL, z): the written key splits it.
    assert tr._buffer.size == written + RANGE_BYTES + 2 + one_key(b"m")
    tr.cancel()


async def test_reads_that_cross_the_limit_fail_the_commit_and_write_nothing() -> None:
    store = MemoryStore(limits=Limits(transaction_bytes=1000))
    tr = store.create_transaction()
    tr.set(b"k", b"v")
    for n in range(20):
        await tr.get(b"read-%02d" % n)
    with pytest.raises(quickq.TransactionTooLargeError, match="limit of 1000"):
        await tr.commit()
    assert store.raw_items() == []


# -- enqueue_many within the limit ------------------------------------------------


def _queue(store: MemoryStore) -> quickq.JobQueue:
    return quickq.JobQueue(store, clock=lambda: NOW)


async def test_enqueue_many_over_foundationdbs_limit_is_refused_with_nothing_written() -> None:
    # 20,000 small jobs: 7.7 MB of keys and values, but about 17 MB as
    # FoundationDB counts a transaction: it would fail on a cluster.
    store = MemoryStore()
    jobs = [quickq.NewJob("q", "t", n) for n in range(20_000)]
    with pytest.raises(quickq.TooLargeError, match="10000000"):
        await _queue(store).enqueue_many(jobs)
    assert store.raw_items() == []


async def test_the_foundationdb_store_counts_as_the_memory_store() -> None:
    from quickq.stores.fdb import FoundationDBStore

    from .fdb_standin import StandinFDB

    store = await FoundationDBStore.open(bindings=StandinFDB(), prefix=b"app/")
    tr = store.create_transaction()
    await tr.get(b"b")
    assert tr._size == one_key(b"app/b")  # the prefix counts
    tr.set(b"a", b"1")
    await tr.get(b"c", snapshot=True)
    await tr.get_range(b"d", b"e")
    await tr.get_range(b"f", b"g", limit=1)
    for _ in range(3):
        tr.add(b"n", 1)
    tr.set(b"a", b"22")
    tr.clear(b"x")
    tr.clear_range(b"y", b"z")
    tr.add_read_conflict_key(b"r")
    tr.add_read_conflict_range(b"s", b"t")
    await tr.get(b"zz", snapshot=True)  # after the writes, on the stand-in's thread
    memory = tr._tr.memory  # the stand-in runs the transaction on a memory store
    assert tr._size == memory._buffer.size > 0
    tr.cancel()
    await store.aclose()
