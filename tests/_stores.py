"""Helpers shared by the tests: the stores they run on (a FoundationDB cluster
when one is given, a store that can be cut off), virtual time, and dumps."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio.testing

from quickq import StoreUnavailableError
from quickq.stores import KeyValue, MemoryStore, Store, Transaction
from quickq.stores.fdb import FoundationDBStore
from quickq.stores.sqlite import SQLiteStore

T = TypeVar("T")
CLUSTER_FILE = os.environ.get("QUICKQ_FDB_CLUSTER_FILE", "")
"""A FoundationDB cluster file: the FoundationDB tests run only when one is given."""

EPOCH = 1_800_000_000.0
"""Virtual wall-clock time at the start of every trio run in these tests."""


def virtual_clock() -> float:
    """quickq's wall clock, driven by trio's (mock) clock."""
    return EPOCH + trio.current_time()


def run_virtual(fn: Callable[[], Awaitable[T]]) -> T:
    """Run *fn* under trio with a MockClock that jumps whenever all tasks sleep."""
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


class Partition:
    """A view of a store that can be cut off, as a network partition would.

    Once ``cut()`` is called every operation raises StoreUnavailableError: a
    consumer behind it can neither extend nor release its leases.
    """

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.is_cut = False

    def cut(self) -> None:
        self.is_cut = True

    def create_transaction(self) -> Transaction:
        if self.is_cut:
            raise StoreUnavailableError("partitioned")
        return self.store.create_transaction()

    async def transact(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        if self.is_cut:
            raise StoreUnavailableError("partitioned")
        return await self.store.transact(fn)

    async def aclose(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


TestStore = MemoryStore | SQLiteStore | FoundationDBStore


async def dump(store: Store) -> list[KeyValue]:
    """Every pair in the store, read through a transaction."""
    return await store.transact(lambda tr: tr.get_range(b"", b"\xff"))


async def read(store: Store, key: bytes) -> bytes | None:
    return await store.transact(lambda tr: tr.get(key))


def fdb_skip_reason() -> str | None:
    """Why the FoundationDB tests cannot run here, or None when a cluster is reachable."""
    from quickq.stores.fdb import load_bindings

    if not CLUSTER_FILE:
        return (
            "no FoundationDB cluster: set QUICKQ_FDB_CLUSTER_FILE to a cluster file "
            "to run the FoundationDB store's tests against it"
        )
    try:
        load_bindings()
    except StoreUnavailableError as exc:
        return f"QUICKQ_FDB_CLUSTER_FILE is set but the FoundationDB client cannot load: {exc}"
    if not os.path.exists(CLUSTER_FILE):
        return f"QUICKQ_FDB_CLUSTER_FILE names {CLUSTER_FILE!r}, which does not exist"
    return None


def fdb_test_prefix(tag: uuid.UUID | None = None) -> bytes:
    """A fresh key prefix for one test on a shared cluster.

    Printable, so it never starts with ``b"\\xff"`` (FoundationDB's system
    keys, which the store refuses): raw ``uuid4().bytes`` did once in 256 runs.
    """
    return b"quickq-test/" + (tag or uuid.uuid4()).hex.encode() + b"/"
