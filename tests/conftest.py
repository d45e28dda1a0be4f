"""Shared fixtures: async tests run on both trio and asyncio via anyio's plugin."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from quickq.stores import Faults, MemoryStore, Transaction
from quickq.stores.fdb import FoundationDBStore
from quickq.stores.sqlite import SQLiteStore

from .fdb_standin import StandinFDB
from .support import CLUSTER_FILE, TestStore, fdb_skip_reason


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["memory", "memory-cluster", "sqlite", "fdb-standin", "fdb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestStore]:
    """A fresh, empty store of each kind the queue suite runs on.

    ``memory-cluster`` is the memory store with a cluster's read latency
    (0.5 ms a read) and its 5 s transaction lifetime.
    ``fdb-standin`` is the FoundationDB store's own code over the in-process
    stand-in for the bindings (tests/fdb_standin.py), with small pages.
    ``fdb`` runs when QUICKQ_FDB_CLUSTER_FILE names a reachable cluster (each
    test under its own random prefix, cleared afterwards); otherwise its cases
    are skipped with the reason.
    """
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "memory-cluster":
        yield MemoryStore(faults=Faults(read_latency=0.0005))
    elif request.param == "sqlite":
        async with await SQLiteStore.open(tmp_path / "queue.db", durability="normal") as sqlite:
            yield sqlite
    elif request.param == "fdb-standin":
        standin = await FoundationDBStore.open(bindings=StandinFDB(page_size=7), prefix=b"app/")
        try:
            yield standin
        finally:
            await standin.aclose()
    else:
        reason = fdb_skip_reason()
        if reason is not None:
            pytest.skip(reason)
        fdb = await FoundationDBStore.open(CLUSTER_FILE, prefix=uuid.uuid4().bytes)
        try:
            yield fdb
        finally:
            await fdb.transact(_clear_all)
            await fdb.aclose()


async def _clear_all(tr: Transaction) -> None:
    tr.clear_range(b"", b"\xff")


# Hypothesis profiles. The default keeps the whole suite fast; the store state
# machine runs at least quickq.testing.MIN_EXAMPLES examples whatever the profile.
# QUICKQ_HYPOTHESIS_PROFILE=long for long runs (nightly, before a release).
settings.register_profile("long", max_examples=5_000, stateful_step_count=100, deadline=None)
settings.load_profile(os.environ.get("QUICKQ_HYPOTHESIS_PROFILE", "default"))
