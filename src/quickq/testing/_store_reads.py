"""Conformance tests of reads and writes: basics, read-your-writes, and
one consistent snapshot per transaction.
"""

from __future__ import annotations

from ._store_base import OUT, K, S, StoreTestBase, counter


class ReadWriteTests(StoreTestBase[S], abstract=True):
    """The read and write tests of StoreTests."""

    # -- basics -----------------------------------------------------------------

    async def test_commit_writes_and_reads_see_committed_data(self, store: S) -> None:
        """Writes are invisible until commit, then committed; reads see committed data, and an empty
        value is a value, not an absent key."""
        tr = store.create_transaction()
        tr.set(b"a", b"1")
        tr.set(b"empty", b"")
        assert self.backdoor_get(store, b"a") is None  # invisible until commit
        await tr.commit()
        assert self.backdoor_get(store, b"a") == b"1"
        assert self.backdoor_get(store, b"empty") == b""  # an empty value is a value

        self.backdoor_set(store, b"b", b"2")
        tr = store.create_transaction()
        assert await tr.get(b"b") == b"2"
        assert await tr.get(b"empty") == b""
        assert await tr.get(b"absent") is None
        assert await tr.get_range(b"", b"\xff") == [(b"a", b"1"), (b"b", b"2"), (b"empty", b"")]
        tr.cancel()

    async def test_cancel_discards_writes(self, store: S) -> None:
        """Cancel writes nothing and may be called again."""
        tr = store.create_transaction()
        tr.set(K, b"1")
        tr.cancel()
        tr.cancel()  # idempotent
        assert self.backdoor_get(store, K) is None

    async def test_clear(self, store: S) -> None:
        """clear removes a key and leaves the others; clearing an absent key is no error."""
        self.backdoor_set(store, b"a", b"1")
        self.backdoor_set(store, b"b", b"2")
        tr = store.create_transaction()
        tr.clear(b"a")
        tr.clear(b"absent")  # no error
        await tr.commit()
        assert self.backdoor_get(store, b"a") is None
        assert self.backdoor_get(store, b"b") == b"2"

    async def test_clear_range_removes_begin_inclusive_end_exclusive(self, store: S) -> None:
        """clear_range removes the keys in [begin, end) and nothing else; an empty range does
        nothing."""
        for key in (b"a", b"b", b"ba", b"b\xff", b"c", b"d"):
            self.backdoor_set(store, key, key)
        tr = store.create_transaction()
        tr.clear_range(b"b", b"c")
        tr.clear_range(b"d", b"d")  # empty: no-op
        await tr.commit()
        for key, kept in ((b"a", True), (b"b", False), (b"ba", False), (b"b\xff", False)):
            assert (self.backdoor_get(store, key) is not None) == kept, key
        assert self.backdoor_get(store, b"c") == b"c"
        assert self.backdoor_get(store, b"d") == b"d"

    async def test_get_range_reverse_and_limit(self, store: S) -> None:
        """get_range returns [begin, end) in key order, reversed with reverse=True, the first
        *limit* pairs (in that order) with a limit, everything with limit=0, and nothing for an
        empty or inverted range."""
        pairs = [(k, k.upper()) for k in (b"a", b"b", b"c", b"d", b"e")]
        for key, value in pairs:
            self.backdoor_set(store, key, value)
        tr = store.create_transaction()
        assert await tr.get_range(b"a", b"f") == pairs
        assert await tr.get_range(b"b", b"d") == pairs[1:3]  # begin in, end out
        assert await tr.get_range(b"a", b"f", limit=2) == pairs[:2]
        assert await tr.get_range(b"a", b"f", reverse=True) == pairs[::-1]
        assert await tr.get_range(b"a", b"f", limit=2, reverse=True) == pairs[:2:-1]
        assert await tr.get_range(b"b", b"d", limit=1, reverse=True) == [pairs[2]]
        assert await tr.get_range(b"a", b"f", limit=99) == pairs
        assert await tr.get_range(b"a", b"f", limit=0) == pairs  # 0: no limit
        assert await tr.get_range(b"c", b"c") == []
        assert await tr.get_range(b"d", b"b") == []
        assert await tr.get_range(b"bb", b"bz") == []
        tr.cancel()

    async def test_atomic_add(self, store: S) -> None:
        """add sums into a 64-bit little-endian counter, treats an absent counter as zero and wraps
        around as FoundationDB's ADD does."""
        self.backdoor_set(store, b"n", counter(10))
        self.backdoor_set(store, b"max", counter(2**63 - 1))
        tr = store.create_transaction()
        tr.add(b"n", 5)
        tr.add(b"n", -20)
        tr.add(b"absent", 3)  # an absent counter counts as zero
        tr.add(b"max", 1)  # wraps around, like FoundationDB's ADD
        await tr.commit()
        assert self.backdoor_get(store, b"n") == counter(-5)
        assert self.backdoor_get(store, b"absent") == counter(3)
        assert self.backdoor_get(store, b"max") == counter(-(2**63))

    async def test_atomic_adds_do_not_conflict(self, store: S) -> None:
        """Two concurrent adds to one counter both commit, and both count: add takes no read
        conflict."""
        one, two = store.create_transaction(), store.create_transaction()
        await one.get(OUT)  # both hold a read version before either commits
        await two.get(OUT)
        one.add(K, 1)
        two.add(K, 2)
        await one.commit()
        await two.commit()  # add takes no read conflict
        assert self.backdoor_get(store, K) == counter(3)

    async def test_blind_writes_do_not_conflict(self, store: S) -> None:
        """Two concurrent transactions that set a key without reading it both commit; the last
        commit wins."""
        one, two = store.create_transaction(), store.create_transaction()
        await one.get(OUT)
        await two.get(OUT)
        one.set(K, b"1")
        two.set(K, b"2")
        await one.commit()
        await two.commit()  # it read nothing: the last commit wins
        assert self.backdoor_get(store, K) == b"2"

    async def test_compare_and_clear(self, store: S) -> None:
        """compare_and_clear clears a key holding exactly the given value, leaves a key holding
        another value, and leaves an absent key absent, as FoundationDB's COMPARE_AND_CLEAR does."""
        self.backdoor_set(store, b"a", b"token")
        self.backdoor_set(store, b"b", b"other")
        self.backdoor_set(store, b"c", b"")
        tr = store.create_transaction()
        tr.compare_and_clear(b"a", b"token")
        tr.compare_and_clear(b"b", b"token")
        tr.compare_and_clear(b"c", b"")  # an empty value is a value like any other
        tr.compare_and_clear(b"absent", b"token")
        await tr.commit()
        assert self.backdoor_get(store, b"a") is None
        assert self.backdoor_get(store, b"b") == b"other"
        assert self.backdoor_get(store, b"c") is None
        assert self.backdoor_get(store, b"absent") is None

    async def test_compare_and_clear_applies_to_the_value_at_commit(self, store: S) -> None:
        """compare_and_clear takes no read conflict and compares with the value as of its commit:
        a concurrent commit that rewrote the key first makes it leave the key alone, and neither
        transaction conflicts."""
        self.backdoor_set(store, K, b"old")
        clearer, writer = store.create_transaction(), store.create_transaction()
        assert await clearer.get(K, snapshot=True) == b"old"
        await writer.get(OUT)
        clearer.compare_and_clear(K, b"old")
        writer.set(K, b"new")
        await writer.commit()
        await clearer.commit()  # no conflict: it read the key only as a snapshot
        assert self.backdoor_get(store, K) == b"new"  # it changed: not cleared

    async def test_read_your_writes_compare_and_clear(self, store: S) -> None:
        """Reads after compare_and_clear see it applied: over the stored value when the
        transaction never wrote the key, at once over a value it wrote, and in order with the
        atomic adds around it, in point and range reads."""
        self.backdoor_set(store, b"a", b"token")
        self.backdoor_set(store, b"b", b"other")
        self.backdoor_set(store, b"n", counter(1))
        tr = store.create_transaction()
        tr.compare_and_clear(b"a", b"token")
        tr.compare_and_clear(b"b", b"token")
        assert await tr.get(b"a") is None
        assert await tr.get(b"b", snapshot=True) == b"other"
        tr.set(b"c", b"mine")
        tr.compare_and_clear(b"c", b"mine")  # over its own write: applied at once
        assert await tr.get(b"c") is None
        tr.add(b"n", 1)  # counter(2) at commit, then compared, then added to
        tr.compare_and_clear(b"n", counter(2))
        tr.add(b"n", 5)
        assert await tr.get(b"n") == counter(5)
        assert await tr.get_range(b"", b"\xff") == [(b"b", b"other"), (b"n", counter(5))]
        await tr.commit()
        assert self.backdoor_get(store, b"a") is None
        assert self.backdoor_get(store, b"b") == b"other"
        assert self.backdoor_get(store, b"c") is None
        assert self.backdoor_get(store, b"n") == counter(5)

    # -- read-your-writes ---------------------------------------------------------

    async def test_read_your_writes_point(self, store: S) -> None:
        """get sees the transaction's own sets, clears and adds (an add over a value it never read,
        or over an absent key, included), with or without snapshot."""
        self.backdoor_set(store, b"a", b"old")
        self.backdoor_set(store, b"n", counter(10))
        tr = store.create_transaction()
        tr.set(b"a", b"new")
        assert await tr.get(b"a") == b"new"
        tr.clear(b"a")
        assert await tr.get(b"a") is None
        tr.set(b"b", b"2")
        assert await tr.get(b"b") == b"2"
        assert await tr.get(b"b", snapshot=True) == b"2"
        tr.add(b"n", 5)  # atomic add over a base this transaction never read
        assert await tr.get(b"n") == counter(15)
        tr.add(b"n", 1)
        assert await tr.get(b"n") == counter(16)
        tr.add(b"m", 3)  # over an absent key
        assert await tr.get(b"m") == counter(3)
        await tr.commit()
        assert self.backdoor_get(store, b"a") is None
        assert self.backdoor_get(store, b"n") == counter(16)
        assert self.backdoor_get(store, b"m") == counter(3)

    async def test_read_your_writes_range(self, store: S) -> None:
        """get_range merges the transaction's own writes over the store, in both orders and with
        limits."""
        for key in (b"a", b"b", b"c"):
            self.backdoor_set(store, key, key)
        self.backdoor_set(store, b"d", counter(1))
        tr = store.create_transaction()
        tr.set(b"b", b"B")
        tr.clear(b"c")
        tr.set(b"bb", b"BB")
        tr.add(b"d", 1)  # over an unknown base
        expected = [(b"a", b"a"), (b"b", b"B"), (b"bb", b"BB"), (b"d", counter(2))]
        assert await tr.get_range(b"a", b"e") == expected
        assert await tr.get_range(b"a", b"e", snapshot=True) == expected
        assert await tr.get_range(b"a", b"e", reverse=True) == expected[::-1]
        assert await tr.get_range(b"a", b"e", limit=2) == expected[:2]
        assert await tr.get_range(b"a", b"e", limit=2, reverse=True) == expected[:1:-1]
        assert await tr.get_range(b"b", b"c") == expected[1:3]
        await tr.commit()
        assert self.backdoor_get(store, b"c") is None
        assert self.backdoor_get(store, b"d") == counter(2)

    async def test_read_your_writes_clear_range_then_set(self, store: S) -> None:
        """After clear_range, reads see the range empty, then the writes made after it; an add after
        a clear counts from zero."""
        for key in (b"a", b"b", b"c"):
            self.backdoor_set(store, key, key)
        tr = store.create_transaction()
        tr.clear_range(b"a", b"c")
        assert await tr.get_range(b"", b"\xff") == [(b"c", b"c")]
        tr.set(b"b", b"B")
        tr.add(b"a", 7)  # after a clear, the base is known: zero
        assert await tr.get(b"a") == counter(7)
        assert await tr.get_range(b"", b"\xff") == [(b"a", counter(7)), (b"b", b"B"), (b"c", b"c")]
        assert await tr.get_range(b"", b"\xff", limit=1, reverse=True) == [(b"c", b"c")]
        await tr.commit()
        assert self.backdoor_get(store, b"a") == counter(7)
        assert self.backdoor_get(store, b"b") == b"B"

    # -- MVCC -------------------------------------------------------------------------

    async def test_transaction_sees_one_consistent_snapshot(self, store: S) -> None:
        """Once a transaction has read, every later read sees the data as of that read version,
        whatever commits meanwhile; a new transaction sees the new data."""
        self.backdoor_set(store, b"a", b"1")
        self.backdoor_set(store, b"b", b"1")
        reader = store.create_transaction()
        assert await reader.get(b"a") == b"1"  # its read version is now fixed
        writer = store.create_transaction()
        writer.set(b"a", b"2")
        writer.set(b"b", b"2")
        writer.set(b"c", b"2")
        await writer.commit()
        self.backdoor_set(store, b"d", b"2")
        # Everything the reader reads afterwards is still as of its read version.
        assert await reader.get(b"b") == b"1"
        assert await reader.get(b"b", snapshot=True) == b"1"
        assert await reader.get(b"c") is None
        assert await reader.get_range(b"", b"\xff") == [(b"a", b"1"), (b"b", b"1")]
        assert await reader.get_range(b"", b"\xff", reverse=True, limit=1) == [(b"b", b"1")]
        reader.cancel()
        fresh = store.create_transaction()
        assert await fresh.get_range(b"", b"\xff") == [(k, b"2") for k in (b"a", b"b", b"c", b"d")]
        fresh.cancel()
