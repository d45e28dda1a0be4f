"""SQLite-specific tests of :class:`quickq.stores.sqlite.SQLiteStore`.

Durability across reopen, several store objects and several OS processes on one
file, bad files and directories, and ``kill -9`` in the middle of a commit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
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

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[1] / "src")


def backdoor_get(path: Path, key: bytes) -> bytes | None:
    with closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


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


async def _set(store: SQLiteStore, key: bytes, value: bytes) -> None:
    async def body(tr: Transaction) -> None:
        tr.set(key, value)

    await store.transact(body)


async def _get(store: SQLiteStore, key: bytes) -> bytes | None:
    async def body(tr: Transaction) -> bytes | None:
        return await tr.get(key)

    return await store.transact(body)


async def _increment(tr: Transaction) -> None:
    # get + set (not add) on purpose: only serializability keeps the count exact.
    value = decode_counter(await tr.get(b"counter"))
    tr.set(b"counter", struct.pack("<q", value + 1))


# -- durability ----------------------------------------------------------------


@pytest.mark.parametrize("durability", ["full", "normal"])
async def test_commits_survive_reopen(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path, durability=durability) as s:  # type: ignore[arg-type]
        await _set(s, b"a", b"1")

        async def body(tr: Transaction) -> None:
            tr.add(b"n", 5)
            tr.clear(b"a")
            tr.set(b"b", b"2")

        await s.transact(body)
    async with await SQLiteStore.open(path) as s:
        assert await _get(s, b"a") is None
        assert await _get(s, b"b") == b"2"
        assert decode_counter(await _get(s, b"n")) == 5
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
        await _set(a, b"k", b"0")
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
        await _set(b, b"k", b"c")
        tc.set(b"other", b"x")
        await tc.commit()
        assert await _get(a, b"k") == b"c"

        async def worker(s: SQLiteStore) -> None:
            for _ in range(25):
                await s.transact(_increment)

        async with anyio.create_task_group() as tg:
            for s in (a, b, a, b):
                tg.start_soon(worker, s)
        assert decode_counter(await _get(b, b"counter")) == 100


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


def _python(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_two_processes_increment_exactly(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path):
        pass  # create the file before the workers race to
    n = 300
    procs = [_python(_COUNTER_WORKER, str(path), str(n), b) for b in ("trio", "asyncio")]
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
    procs = [_python(_BANK_WORKER, str(path), "150", str(seed)) for seed in range(3)]
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
            seen = await _get(watcher, b"k")
            woke: list[float] = []

            async def wait(seen: bytes | None = seen, woke: list[float] = woke) -> None:
                await watcher.wait_for_change(b"k", seen)
                woke.append(anyio.current_time())

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(0.12)
                assert not woke
                await _set(writer, b"k", os.urandom(4))
                written = anyio.current_time()
            assert woke[0] - written < bound


# -- snapshots and the commit log ----------------------------------------------


async def test_cancel_and_commit_release_snapshots(store: SQLiteStore, tmp_path: Path) -> None:
    await _set(store, b"a", b"1")
    for finish in ("cancel", "commit", "drop"):
        tr = store.create_transaction()
        await tr.get(b"a")
        if finish == "cancel":
            tr.cancel()
        elif finish == "commit":
            await tr.commit()
        else:
            del tr  # the janitor reclaims the snapshot of a dropped transaction
        await _set(store, b"a", os.urandom(8))
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
        await _set(a, b"x", b"1")
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
        await _set(s, b"other", b"1")  # version 1
        await _set(s, b"other", b"2")  # version 2
        time.sleep(0.001)  # noqa: ASYNC251 (let the samples age)
        s._writer.prune_now()
        await _set(s, b"other", b"3")  # prunes versions 1 and 2
        tr.set(b"z", b"1")
        with pytest.raises(TransactionTooOldError):
            await tr.commit()
        with closing(sqlite3.connect(tmp_path / "q.db")) as db, db:
            rows = db.execute("SELECT count(*) FROM quickq_commits").fetchone()[0]
        assert rows < 3  # pruned (the newest row is always kept)


# -- bad files and directories -------------------------------------------------


async def test_non_database_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreUnavailableError, match="not a SQLite database") as info:
        await SQLiteStore.open(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes().startswith(b"this is not")  # untouched


async def test_corrupt_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path) as s:
        for i in range(200):
            await _set(s, b"%05d" % i, os.urandom(500))
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(4096 - 100)  # wreck the first page after the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreUnavailableError, match=r"corrupt|not a"):
        await SQLiteStore.open(path)


async def test_foreign_database_is_unavailable_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StoreUnavailableError, match="not a quickq store"):
        await SQLiteStore.open(path)
    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


async def test_newer_format_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path):
        pass
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE quickq_meta SET value = 99 WHERE name = 'format_version'")
    with pytest.raises(StoreUnavailableError, match="format version 99"):
        await SQLiteStore.open(path)


async def test_read_only_directory_is_unavailable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes through any mode bits: /proc refuses new files to everyone.
        directory = Path("/proc")
    else:
        directory = tmp_path / "ro"
        directory.mkdir()
        directory.chmod(0o555)
    try:
        with pytest.raises(StoreUnavailableError, match=r"cannot open|read-only") as info:
            await SQLiteStore.open(directory / "q.db")
        assert "\n" not in str(info.value)
    finally:
        if directory != Path("/proc"):
            directory.chmod(0o755)


async def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError, match="does not exist"):
        await SQLiteStore.open(tmp_path / "nowhere" / "q.db")


async def test_locked_file_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path):
        pass
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("PRAGMA locking_mode = EXCLUSIVE")
        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreUnavailableError, match="locked") as info:
            await SQLiteStore.open(path, busy_timeout=0.1)
        assert "\n" not in str(info.value)
    finally:
        locker.close()


async def test_write_lock_held_too_long_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path, busy_timeout=0.1) as s:
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            assert await _get(s, b"k") is None  # WAL: readers are not blocked
            with pytest.raises(StoreUnavailableError, match="locked"):
                await _set(s, b"k", b"v")
        finally:
            locker.close()
        await _set(s, b"k", b"v")  # and it recovers


# -- kill -9 in the middle of a commit -----------------------------------------

_BATCH_WRITER = textwrap.dedent(
    """
    import struct, sys
    import anyio
    from quickq.stores.sqlite import SQLiteStore

    async def main(path):
        async with await SQLiteStore.open(path) as store:
            i = 0
            while True:
                i += 1
                async def batch(tr, i=i):
                    for k in range(100):
                        tr.set(b"item/%03d" % k, struct.pack("<q", i) * 256)
                    tr.add(b"batches", 1)
                await store.transact(batch)
                if i == 1:
                    print("ready", flush=True)

    anyio.run(main, sys.argv[1], backend="trio")
    """
)


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
async def test_kill_9_during_commits_is_all_or_nothing(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "q.db"
    proc = _python(_BATCH_WRITER, str(path))
    try:
        assert proc.stdout is not None
        line = await anyio.to_thread.run_sync(proc.stdout.readline)
        assert line == b"ready\n", proc.stderr.read() if proc.stderr else b""
        await anyio.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        await anyio.to_thread.run_sync(proc.communicate)  # reaps it, closes the pipes
    async with await SQLiteStore.open(path) as s:

        async def read_all(tr: Transaction) -> tuple[list[bytes], int]:
            items = await tr.get_range(b"item/", b"item0")
            return [v for _, v in items], decode_counter(await tr.get(b"batches"))

        values, batches = await s.transact(read_all)
    assert len(values) == 100
    assert len(set(values)) == 1, "a batch was half written"
    assert struct.unpack_from("<q", values[0])[0] == batches >= 1
    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_cancelled_transactions_leave_the_store_usable(store: SQLiteStore) -> None:
    # Cancel transactions at every stage (reading, committing); each commit is
    # then all or nothing, and no snapshot stays open.
    async def body(tr: Transaction) -> None:
        total = decode_counter(await tr.get(b"n"))
        await tr.get_range(b"a", b"z")
        tr.set(b"n", struct.pack("<q", total + 1))
        tr.set(b"m", struct.pack("<q", total + 1))

    for i in range(60):
        with anyio.move_on_after(0.0001 * (i % 12)):
            await store.transact(body)
    n, m = await _get(store, b"n"), await _get(store, b"m")
    assert n == m
    with anyio.fail_after(5):
        while True:
            with closing(sqlite3.connect(store.path)) as db, db:
                busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0:
                break
            await anyio.sleep(0.05)


async def test_janitor_reclaims_stale_snapshots_without_harming_others(
    store: SQLiteStore,
) -> None:
    await _set(store, b"k", b"1")
    stale = store.create_transaction()
    assert await stale.get(b"k") == b"1"
    store._pool._reclaim_after = 0.0  # every lent connection is stale now
    store._pool.nudge()
    with anyio.fail_after(5):
        while store._pool._out:  # noqa: ASYNC110 (the janitor is a thread)
            await anyio.sleep(0.01)
    store._pool._reclaim_after = 3600.0
    with pytest.raises(TransactionTooOldError):
        await stale.get(b"k")
    fresh = store.create_transaction()  # likely lent the reclaimed connection
    assert await fresh.get(b"k") == b"1"
    await _set(store, b"k", b"2")
    # The stale transaction's commit must not end the fresh one's snapshot.
    stale.set(b"other", b"x")
    with pytest.raises(ConflictError):  # it read k, which changed since
        await stale.commit()
    assert await fresh.get(b"k") == b"1"
    assert await fresh.get_range(b"k", b"l") == [(b"k", b"1")]
    fresh.cancel()


def test_docs_example_runs(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "sqlite.md"
    example = docs.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "PYTHONPATH": SRC}
    subprocess.run([sys.executable, "-c", example], cwd=tmp_path, env=env, check=True)
    assert backdoor_get(tmp_path / "jobs.db", b"greeting") == b"hello"


def test_one_store_serves_successive_event_loops(tmp_path: Path) -> None:
    async def open_and_write() -> SQLiteStore:
        s = await SQLiteStore.open(tmp_path / "q.db")
        await _set(s, b"k", b"trio")
        return s

    store = anyio.run(open_and_write, backend="trio")

    async def read_and_close() -> bytes | None:
        try:
            return await _get(store, b"k")
        finally:
            await store.aclose()

    assert anyio.run(read_and_close, backend="asyncio") == b"trio"


async def test_group_commit_keeps_concurrent_commits_serializable(store: SQLiteStore) -> None:
    # Many tasks commit at once, so one SQLite transaction carries several of
    # their commits: conflicting ones must still fail and retry, the rest apply.
    async def work(task: int) -> None:
        for i in range(15):

            async def body(tr: Transaction, i: int = i) -> None:
                await _increment(tr)
                tr.set(b"own/%02d/%02d" % (task, i), b"x")
                tr.add(b"adds", 1)

            await store.transact(body)

    async with anyio.create_task_group() as tg:
        for task in range(12):
            tg.start_soon(work, task)

    async def check(tr: Transaction) -> tuple[int, int, int]:
        own = await tr.get_range(b"own/", b"own0")
        return (
            decode_counter(await tr.get(b"counter")),
            decode_counter(await tr.get(b"adds")),
            len(own),
        )

    assert await store.transact(check) == (180, 180, 180)


async def test_sqlite_failures_surface_as_store_errors(store: SQLiteStore) -> None:
    await _set(store, b"k", b"1")
    with closing(sqlite3.connect(store.path)) as db, db:
        db.execute("ALTER TABLE kv RENAME TO kv_gone")  # sabotage, behind the store's back
    with pytest.raises(StoreUnavailableError, match="no such table"):
        await _get(store, b"k")
    with pytest.raises(StoreUnavailableError, match="no such table"):
        await _set(store, b"k", b"2")
    with closing(sqlite3.connect(store.path)) as db, db:
        db.execute("ALTER TABLE kv_gone RENAME TO kv")
    assert await _get(store, b"k") == b"1"
