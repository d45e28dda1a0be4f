"""The FoundationDB store on a real cluster: the conformance suite, and what only a
cluster can show.

These run when the environment variable ``QUICKQ_FDB_CLUSTER_FILE`` names a
cluster file and FoundationDB's client library loads; otherwise the whole module
is reported as skipped, with the reason. Each test works under its own random
key prefix and clears it afterwards, so a shared cluster is safe to use. See
``docs/foundationdb.md`` for running a cluster in a container.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import anyio
import pytest

import quickq
from quickq import StoreUnavailableError
from quickq.stores import Limits, Transaction
from quickq.stores.fdb import FoundationDBStore, load_bindings
from quickq.testing import StoreTests

from ._stores import CLUSTER_FILE, fdb_skip_reason, fdb_test_prefix

_REASON = fdb_skip_reason()
if _REASON is not None:
    pytest.skip(_REASON, allow_module_level=True)

pytestmark = [pytest.mark.fdb, pytest.mark.anyio]

PREFIX_BYTES = len(fdb_test_prefix())


class TestFoundationDBStoreOnCluster(StoreTests[FoundationDBStore]):
    """Every store promise, on the cluster named by ``QUICKQ_FDB_CLUSTER_FILE``."""

    limits: ClassVar[Limits] = Limits(key_bytes=10_000 - PREFIX_BYTES)
    supports_fault_injection = False  # a real cluster fails when it fails
    supports_mock_clock = False  # transaction age is the cluster's, in real time

    @pytest.fixture
    async def store(self) -> AsyncIterator[FoundationDBStore]:
        prefix = fdb_test_prefix()
        assert len(prefix) == PREFIX_BYTES
        store = await FoundationDBStore.open(CLUSTER_FILE, prefix=prefix)
        self._fdb = load_bindings()
        self._db = self._fdb.open(CLUSTER_FILE)
        self._prefix = prefix
        yield store
        await store.transact(_clear_everything)
        await store.aclose()

    # The backdoor uses the bindings' blocking calls, bypassing the store under
    # test: brief, and only in tests.
    def backdoor_get(self, store: FoundationDBStore, key: bytes) -> bytes | None:
        tr = self._db.create_transaction()
        value = tr.get(self._prefix + key).value
        tr.cancel()
        return None if value is None else bytes(value)

    def backdoor_set(self, store: FoundationDBStore, key: bytes, value: bytes | None) -> None:
        tr = self._db.create_transaction()
        if value is None:
            tr.clear(self._prefix + key)
        else:
            tr.set(self._prefix + key, value)
        tr.commit().wait()


async def _clear_everything(tr: Transaction) -> None:
    tr.clear_range(b"", b"\xff")


@pytest.fixture
async def store() -> AsyncIterator[FoundationDBStore]:
    store = await FoundationDBStore.open(CLUSTER_FILE, prefix=fdb_test_prefix())
    yield store
    await store.transact(_clear_everything)
    await store.aclose()


async def test_a_large_range_is_read_in_many_pages(store: FoundationDBStore) -> None:
    # 4 MB: far more than one page of a want_all range read.
    value = b"v" * 4_000
    keys = [b"r%05d" % i for i in range(1_000)]

    async def write(tr: Transaction) -> None:
        for key in keys:
            tr.set(key, value)

    await store.transact(write)

    async def read(tr: Transaction) -> Any:
        forward = await tr.get_range(b"r", b"s")
        backward = await tr.get_range(b"r", b"s", reverse=True, snapshot=True)
        limited = await tr.get_range(b"r", b"s", limit=777)
        return forward, backward, limited

    forward, backward, limited = await store.transact(read)
    assert [k for k, _ in forward] == keys
    assert [k for k, _ in backward] == keys[::-1]
    assert [k for k, _ in limited] == keys[:777]


async def test_wrong_cluster_file_is_reported(tmp_path: Any) -> None:
    missing = tmp_path / "absent.cluster"
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        await FoundationDBStore.open(missing)


async def test_the_queue_runs_jobs_on_the_cluster(store: FoundationDBStore) -> None:
    # The queue end to end on the cluster: enqueue (alone and inside the
    # application's transaction), a consumer woken by the store's watch, retries.
    jobs = quickq.JobRegistry()
    done: list[int] = []
    all_done = anyio.Event()
    failures = 0

    @jobs.job("count", max_retries=2)
    async def count(payload: Any, meta: Any) -> None:
        nonlocal failures
        if payload["n"] == 7 and failures == 0:
            failures += 1
            raise RuntimeError("fails once")
        done.append(payload["n"])
        if len(done) == 21:
            all_done.set()

    queue = quickq.JobQueue(store, jobs)
    for n in range(20):
        await queue.enqueue("tenant", "count", {"n": n})

    async def place_order(tr: Transaction) -> None:
        tr.set(b"orders/1", b"{}")
        await queue.enqueue("tenant", "count", {"n": 20}, tr=tr)

    await store.transact(place_order)
    with anyio.fail_after(60):
        async with quickq.open_consumer(store, jobs, concurrency=5, batch_size=5) as consumer:
            await all_done.wait()
            await consumer.wait_idle()
    assert sorted(done) == list(range(21))
    assert failures == 1
    stats = await queue.stats("tenant")
    assert (stats.pending, stats.running, stats.dead) == (0, 0, 0)
