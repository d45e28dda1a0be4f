"""Conformance tests of conflicts (which reads conflict with which
writes) and of closed transactions.
"""

from __future__ import annotations

import struct

import pytest

from ..stores._protocol import get_many
from ._store_base import OUT, K, S, StoreTestBase


class ConflictTests(StoreTestBase[S], abstract=True):
    """The conflict and closed-transaction tests of StoreTests."""

    # -- conflicts ---------------------------------------------------------------

    async def test_normal_read_conflicts_with_concurrent_committed_write(self, store: S) -> None:
        """A key read without snapshot makes the commit conflict when another transaction commits a
        write to it first."""
        self.backdoor_set(store, K, b"0")
        reader = store.create_transaction()
        assert await reader.get(K) == b"0"
        assert await self._outcome_after_write(store, reader, K)

    async def test_normal_read_of_absent_key_conflicts_with_its_insertion(self, store: S) -> None:
        """Reading an absent key conflicts with a concurrent commit that inserts it."""
        reader = store.create_transaction()
        assert await reader.get(K) is None
        assert await self._outcome_after_write(store, reader, K)

    async def test_snapshot_read_does_not_conflict(self, store: S) -> None:
        """Snapshot reads, point or range, take no read conflict."""
        self.backdoor_set(store, K, b"0")
        reader = store.create_transaction()
        assert await reader.get(K, snapshot=True) == b"0"
        assert await reader.get_range(b"a", b"z", snapshot=True) == [(K, b"0")]
        assert not await self._outcome_after_write(store, reader, K)

    async def test_get_many_reads_like_gets_and_conflicts_like_them(self, store: S) -> None:
        """quickq.stores.get_many (the store's own get_many where it has one) sees the transaction's
        writes and conflicts as that many gets would, and not at all with snapshot=True."""
        # Through quickq.stores.get_many: the store's own get_many if it has one.
        self.backdoor_set(store, b"ga", b"1")
        self.backdoor_set(store, b"gb", b"2")
        reader = store.create_transaction()
        reader.set(b"gb", b"mine")
        reader.add(b"gc", 5)
        values = await get_many(reader, [b"ga", b"gb", b"gc", b"gd"])
        assert values == [b"1", b"mine", struct.pack("<q", 5), None]
        snapshot = await get_many(reader, [b"ge"], snapshot=True)
        assert snapshot == [None]
        assert await self._outcome_after_write(store, reader, b"gd")  # read: conflicts
        reader = store.create_transaction()
        assert await get_many(reader, [b"ge"], snapshot=True) == [None]
        assert not await self._outcome_after_write(store, reader, b"ge")

    async def test_range_read_conflicts_with_insertion_into_the_range(self, store: S) -> None:
        """A range read conflicts with a concurrent insertion anywhere in the range (a phantom)."""
        self.backdoor_set(store, b"ka", b"1")
        reader = store.create_transaction()
        assert await reader.get_range(b"k", b"l") == [(b"ka", b"1")]
        assert await self._outcome_after_write(store, reader, b"kz")  # a phantom

    @pytest.mark.parametrize(
        ("reverse", "written", "conflicts"),
        [
            (False, b"k", True),  # begin
            (False, b"k0", True),  # between begin and the key read
            (False, b"ka", True),  # the key read
            (False, b"ka\x00", False),  # just past what it observed
            (False, b"kc", False),  # the next key, never observed
            (True, b"kz", True),
            (True, b"kc", True),
            (True, b"kb\xff", False),
            (True, b"ka", False),
        ],
    )
    async def test_limited_range_read_conflicts_only_on_what_it_observed(
        self, store: S, reverse: bool, written: bytes, conflicts: bool
    ) -> None:
        """A range read stopped by its limit conflicts only on the part of the range it observed, in
        either direction, as FoundationDB's do."""
        # limit=1 reading ka conflicts on [k, ka\x00) only; reversed, reading kc
        # conflicts on [kc, l) only, as FoundationDB's range reads do.
        self.backdoor_set(store, b"ka", b"1")
        self.backdoor_set(store, b"kc", b"3")
        reader = store.create_transaction()
        seen = await reader.get_range(b"k", b"l", limit=1, reverse=reverse)
        assert seen == ([(b"kc", b"3")] if reverse else [(b"ka", b"1")])
        assert await self._outcome_after_write(store, reader, written) == conflicts

    async def test_add_read_conflict_key(self, store: S) -> None:
        """add_read_conflict_key makes the commit conflict with a write to that key, and to no
        other."""
        reader = store.create_transaction()
        await reader.get(OUT, snapshot=True)
        reader.add_read_conflict_key(K)
        assert await self._outcome_after_write(store, reader, K)

        reader = store.create_transaction()
        await reader.get(OUT, snapshot=True)
        reader.add_read_conflict_key(K)
        assert not await self._outcome_after_write(store, reader, K + b"\x00")

    @pytest.mark.parametrize(
        ("written", "conflicts"),
        [(b"b", True), (b"bzz", True), (b"a\xff", False), (b"c", False)],
    )
    async def test_add_read_conflict_range(self, store: S, written: bytes, conflicts: bool) -> None:
        """add_read_conflict_range makes the commit conflict with writes inside [begin, end)
        only."""
        reader = store.create_transaction()
        await reader.get(OUT, snapshot=True)
        reader.add_read_conflict_range(b"b", b"c")
        assert await self._outcome_after_write(store, reader, written) == conflicts

    # -- closed transactions ----------------------------------------------------

    async def test_committed_transaction_cannot_be_reused(self, store: S) -> None:
        """After commit, every read, write and commit raises TransactionClosedError; cancel stays
        allowed."""
        tr = store.create_transaction()
        tr.set(K, b"1")
        await tr.commit()
        await self._assert_closed(tr)
        assert self.backdoor_get(store, K) == b"1"

    async def test_cancelled_transaction_cannot_be_used(self, store: S) -> None:
        """After cancel, every read, write and commit raises TransactionClosedError, and nothing is
        written."""
        tr = store.create_transaction()
        tr.cancel()
        await self._assert_closed(tr)
        assert self.backdoor_get(store, K) is None

    async def test_conflicted_transaction_cannot_be_reused(self, store: S) -> None:
        """After a commit that conflicted, the transaction is closed like a committed one."""
        reader = store.create_transaction()
        await reader.get(K)
        assert await self._outcome_after_write(store, reader, K)
        await self._assert_closed(reader)
