"""SQLite-specific tests of :class:`quickq.stores.sqlite.SQLiteStore`.

Durability across reopen, several store objects and several OS processes on one
file, snapshots and the commit log. Bad files and ``kill -9`` in the middle of a
commit are in ``test_store_sqlite_files.py``.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from quickq import (
    ConflictError,
    StoreUnavailableError,
    TransactionClosedError,
    TransactionTooOldError,
)
from quickq.stores import Limits, Transaction, decode_counter
from quickq.stores.sqlite import SQLiteStore
from quickq.testing import StoreTests

from ._sqlite import backdoor_get, get_key, increment, run_python, set_key

pytestmark = pytest.mark.anyio


class TestSQLiteStoreConformance(StoreTests[SQLiteStore]):
    """The shared store conformance suite, with a backdoor through plain ``sqlite3``,
    with reads on the event loop (the default) and in worker threads."""

    limits = Limits()
    supports_fault_injection = True  # SQLiteStore.inject
    supports_mock_clock = True  # transaction age is on the event loop's clock

    @pytest.fixture(params=[False, True], ids=["loop-reads", "threaded-reads"])
    async def store(
        self, tmp_path: Path, request: pytest.FixtureRequest
    ) -> AsyncIterator[SQLiteStore]:
        async with await SQLiteStore.open(tmp_path / "q.db", threaded_reads=request.param) as s:
            # The state machine reads every key after every step: keep one
            # autocommit connection for the backdoor instead of opening many.
            self._backdoor = sqlite3.connect(s.path, isolation_level=None, check_same_thread=False)
            try:
                yield s
            finally:
                self._backdoor.close()

    def backdoor_get(self, store: SQLiteStore, key: bytes) -> bytes | None:
        row = self._backdoor.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def backdoor_set(self, store: SQLiteStore, key: bytes, value: bytes | None) -> None:
        if value is None:
            self._backdoor.execute("DELETE FROM kv WHERE key = ?", (key,))
        else:
            self._backdoor.execute(
                "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value)
            )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with await SQLiteStore.open(tmp_path / "q.db") as s:
        yield s


# -- durability ----------------------------------------------------------------


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_commits_survive_reopen(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path, durability=durability) as s:  # type: ignore[arg-type]
        await set_key(s, b"a", b"1")

        async def body(tr: Transaction) -> None:
            tr.add(b"n", 5)
            tr.clear(b"a")
            tr.set(b"b", b"2")

        await s.transact(body)
    async with await SQLiteStore.open(path) as s:
        assert await get_key(s, b"a") is None
        assert await get_key(s, b"b") == b"2"
        assert decode_counter(await get_key(s, b"n")) == 5
    assert backdoor_get(path, b"b") == b"2"


async def test_open_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        await SQLiteStore.open(tmp_path / "q.db", durability="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="poll_interval"):
        await SQLiteStore.open(tmp_path / "q.db", poll_interval=0)
    with pytest.raises(ValueError, match="file path"):
        await SQLiteStore.open(":memory:")


async def test_closed_store_raises_store_errors_only(tmp_path: Path) -> None:
    s = await SQLiteStore.open(tmp_path / "q.db")
    tr = s.create_transaction()
    await tr.get(b"a")
    await s.aclose()
    await s.aclose()  # idempotent
    with pytest.raises(StoreUnavailableError, match="closed"):
        await tr.get(b"b")
    with pytest.raises(StoreUnavailableError, match="closed"):
        s.create_transaction()


# -- several store objects and processes on one file ---------------------------


async def test_two_store_objects_conflict_serializably(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path) as a, await SQLiteStore.open(path) as b:
        await set_key(a, b"k", b"0")
        ta, tb = a.create_transaction(), b.create_transaction()
        assert await ta.get(b"k") == b"0"
        assert await tb.get(b"k") == b"0"
        ta.set(b"k", b"a")
        tb.set(b"k", b"b")
        await tb.commit()
        with pytest.raises(ConflictError):
            await ta.commit()
        # A snapshot read takes no conflict.
        tc = a.create_transaction()
        await tc.get(b"k", snapshot=True)
        await set_key(b, b"k", b"c")
        tc.set(b"other", b"x")
        await tc.commit()
        assert await get_key(a, b"k") == b"c"

        async def worker(s: SQLiteStore) -> None:
            for _ in range(25):
                await s.transact(increment)

        async with anyio.create_task_group() as tg:
            for s in (a, b, a, b):
                tg.start_soon(worker, s)
        assert decode_counter(await get_key(b, b"counter")) == 100


_COUNTER_WORKER = textwrap.dedent(
    """
    import os, struct, sys, time
    import anyio
    from quickq.stores import decode_counter
    from quickq.stores.sqlite import SQLiteStore

    attempts = 0

    async def increment(tr):
        global attempts
        attempts += 1
        value = decode_counter(await tr.get(b"counter"))
        tr.set(b"counter", struct.pack("<q", value + 1))

    async def main(path, n):
        async with await SQLiteStore.open(path, durability="normal") as store:
            print("ready", flush=True)
            while not os.path.exists(path + ".go"):  # start together
                time.sleep(0.001)
            for _ in range(n):
                await store.transact(increment)
        print(attempts - n)

    anyio.run(main, sys.argv[1], int(sys.argv[2]), backend=sys.argv[3])
    """
)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_two_processes_increment_exactly(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path):
        pass  # create the file before the workers race to
    n = 300
    procs = [run_python(_COUNTER_WORKER, str(path), str(n), b) for b in ("trio", "asyncio")]
    for proc in procs:
        assert proc.stdout is not None
        assert await anyio.to_thread.run_sync(proc.stdout.readline) == b"ready\n"
    await anyio.Path(f"{path}.go").touch()
    retries = 0
    for proc in procs:
        out, err = await anyio.to_thread.run_sync(proc.communicate)
        assert proc.returncode == 0, err.decode()
        retries += int(out.split()[-1])
    assert decode_counter(backdoor_get(path, b"counter")) == 2 * n
    assert retries > 0  # the processes did contend, and conflicts were resolved


_BANK_WORKER = textwrap.dedent(
    """
    import os, random, struct, sys, time
    import anyio
    from quickq.stores import decode_counter
    from quickq.stores.sqlite import SQLiteStore

    ACCOUNTS, TOTAL = 8, 8000

    async def main(path, n, seed):
        rng = random.Random(seed)
        async with await SQLiteStore.open(path, durability="normal") as store:
            print("ready", flush=True)
            while not os.path.exists(path + ".go"):
                time.sleep(0.001)
            for _ in range(n):
                a, b = rng.sample(range(ACCOUNTS), 2)
                amount = rng.randint(1, 50)

                async def transfer(tr):
                    ka, kb = b"acct/%d" % a, b"acct/%d" % b
                    va = decode_counter(await tr.get(ka))
                    vb = decode_counter(await tr.get(kb))
                    tr.set(ka, struct.pack("<q", va - amount))
                    tr.set(kb, struct.pack("<q", vb + amount))

                async def audit(tr):
                    pairs = await tr.get_range(b"acct/", b"acct0", snapshot=rng.random() < 0.5)
                    return sum(decode_counter(v) for _, v in pairs)

                await store.transact(transfer)
                total = await store.transact(audit)
                assert total == TOTAL, total  # every snapshot is consistent

    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), backend="trio")
    """
)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_three_processes_keep_transfers_consistent(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path) as s:

        async def fund(tr: Transaction) -> None:
            for i in range(8):
                tr.set(b"acct/%d" % i, struct.pack("<q", 1000))

        await s.transact(fund)
    procs = [run_python(_BANK_WORKER, str(path), "150", str(seed)) for seed in range(3)]
    for proc in procs:
        assert proc.stdout is not None
        assert await anyio.to_thread.run_sync(proc.stdout.readline) == b"ready\n"
    await anyio.Path(f"{path}.go").touch()
    for proc in procs:
        _, err = await anyio.to_thread.run_sync(proc.communicate)
        assert proc.returncode == 0, err.decode()
    async with await SQLiteStore.open(path) as s:

        async def balances(tr: Transaction) -> list[int]:
            return [decode_counter(v) for _, v in await tr.get_range(b"acct/", b"acct0")]

        found = await s.transact(balances)
    assert sum(found) == 8000
    assert found != [1000] * 8


async def test_watch_wakes_in_process_at_once_and_polls_others(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with (
        await SQLiteStore.open(path, poll_interval=0.05) as watcher,
        await SQLiteStore.open(path) as other,
    ):
        await watcher.wait_for_change(b"k", b"nope")  # differs already: returns at once
        # Same store object: woken by the commit itself. Another object (as
        # another process would be): noticed by the next poll.
        for writer, bound in ((watcher, 0.03), (other, 0.3)):
            seen = await get_key(watcher, b"k")
            woke: list[float] = []

            async def wait(seen: bytes | None = seen, woke: list[float] = woke) -> None:
                await watcher.wait_for_change(b"k", seen)
                woke.append(anyio.current_time())

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(0.12)
                assert not woke
                await set_key(writer, b"k", os.urandom(4))
                written = anyio.current_time()
            assert woke[0] - written < bound


# -- snapshots and the commit log ----------------------------------------------


async def test_cancel_and_commit_release_snapshots(store: SQLiteStore, tmp_path: Path) -> None:
    await set_key(store, b"a", b"1")
    for finish in ("cancel", "commit", "drop"):
        tr = store.create_transaction()
        await tr.get(b"a")
        if finish == "cancel":
            tr.cancel()
        elif finish == "commit":
            await tr.commit()
        else:
            del tr  # the janitor reclaims the snapshot of a dropped transaction
        await set_key(store, b"a", os.urandom(8))
        # With no snapshot left open, a checkpoint can recycle the whole WAL.
        with anyio.fail_after(5):
            while True:
                with closing(sqlite3.connect(tmp_path / "q.db")) as db, db:
                    busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy == 0:
                    break
                await anyio.sleep(0.05)


async def test_transaction_reads_one_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path) as a, await SQLiteStore.open(path) as b:
        await set_key(a, b"x", b"1")
        tr = a.create_transaction()
        assert await tr.get(b"x") == b"1"

        async def body(t: Transaction) -> None:
            t.set(b"x", b"2")
            t.set(b"y", b"2")

        await b.transact(body)
        assert await tr.get(b"y") is None
        assert await tr.get_range(b"", b"\xff") == [(b"x", b"1")]
        tr.cancel()
        with pytest.raises(TransactionClosedError):
            await tr.get(b"x")


async def test_old_transactions_are_refused_once_the_log_is_pruned(tmp_path: Path) -> None:
    limits = Limits(transaction_seconds=1000.0)
    async with await SQLiteStore.open(tmp_path / "q.db", limits=limits) as s:
        s._writer.log_horizon = 0.0  # every row is old enough to prune
        tr = s.create_transaction()
        await tr.get(b"k")  # its read version: 0
        await set_key(s, b"other", b"1")  # version 1
        await set_key(s, b"other", b"2")  # version 2
        time.sleep(0.001)  # noqa: ASYNC251 (let the samples age)
        s._writer.prune_now()
        await set_key(s, b"other", b"3")  # prunes versions 1 and 2
        tr.set(b"z", b"1")
        with pytest.raises(TransactionTooOldError):
            await tr.commit()
        with closing(sqlite3.connect(tmp_path / "q.db")) as db, db:
            rows = db.execute("SELECT count(*) FROM quickq_commits").fetchone()[0]
        assert rows < 3  # pruned (the newest row is always kept)
