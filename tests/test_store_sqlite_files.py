"""SQLite-specific tests of :class:`quickq.stores.sqlite.SQLiteStore`, continued:
bad files and directories, and ``kill -9`` in the middle of a commit."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from quickq import (
    CommitUnknownResultError,
    ConflictError,
    StoreUnavailableError,
    TransactionTooOldError,
)
from quickq.stores import CommitFault, Transaction, decode_counter, get_many
from quickq.stores.sqlite import SQLiteStore

from ._sqlite import SRC, backdoor_get, get_key, increment, run_python, set_key

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with await SQLiteStore.open(tmp_path / "q.db") as s:
        yield s


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
            await set_key(s, b"%05d" % i, os.urandom(500))
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
            assert await get_key(s, b"k") is None  # WAL: readers are not blocked
            with pytest.raises(StoreUnavailableError, match="locked"):
                await set_key(s, b"k", b"v")
        finally:
            locker.close()
        await set_key(s, b"k", b"v")  # and it recovers


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
    proc = run_python(_BATCH_WRITER, str(path))
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
    n, m = await get_key(store, b"n"), await get_key(store, b"m")
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
    await set_key(store, b"k", b"1")
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
    await set_key(store, b"k", b"2")
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
        await set_key(s, b"k", b"trio")
        return s

    store = anyio.run(open_and_write, backend="trio")

    async def read_and_close() -> bytes | None:
        try:
            return await get_key(store, b"k")
        finally:
            await store.aclose()

    assert anyio.run(read_and_close, backend="asyncio") == b"trio"


async def test_group_commit_keeps_concurrent_commits_serializable(store: SQLiteStore) -> None:
    # Many tasks commit at once, so one SQLite transaction carries several of
    # their commits: conflicting ones must still fail and retry, the rest apply.
    async def work(task: int) -> None:
        for i in range(15):

            async def body(tr: Transaction, i: int = i) -> None:
                await increment(tr)
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


async def test_one_group_commit_decides_each_transaction_in_order(store: SQLiteStore) -> None:
    # Hold the writer's lock so that three commits queue, then let them go
    # as one group: each is checked as if committed alone, in queue order.
    await set_key(store, b"a", b"0")
    reader = store.create_transaction()
    assert await reader.get(b"a") == b"0"  # read before the group's first commit
    reader.set(b"b", b"from-reader")
    first = store.create_transaction()
    first.set(b"a", b"1")
    blind = store.create_transaction()
    blind.set(b"c", b"blind")
    failing = store.create_transaction()
    failing.set(b"d", b"never")
    store.inject(None, None, CommitFault.UNKNOWN_NOT_APPLIED, None)
    writer = store._writer
    outcomes: dict[str, str] = {}

    async def commit(name: str, tr: Transaction) -> None:
        try:
            await tr.commit()
            outcomes[name] = "committed"
        except (ConflictError, CommitUnknownResultError) as exc:
            outcomes[name] = type(exc).__name__

    writer._lock.acquire()  # the first thread to take it next commits the whole queue
    async with anyio.create_task_group() as tg:
        try:
            queued = [("first", first), ("reader", reader), ("failing", failing), ("blind", blind)]
            for n, (name, tr) in enumerate(queued, 1):
                tg.start_soon(commit, name, tr)
                while len(writer._queue) < n:  # noqa: ASYNC110 (a thread fills it)
                    await anyio.sleep(0.001)
        finally:
            writer._lock.release()
    assert outcomes == {
        "first": "committed",
        "reader": "ConflictError",  # it read what "first", earlier in the group, wrote
        "failing": "CommitUnknownResultError",
        "blind": "committed",
    }
    assert [await get_key(store, k) for k in (b"a", b"b", b"c", b"d")] == [
        b"1",
        None,
        b"blind",
        None,
    ]


async def test_commit_waits_for_another_connections_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    async with await SQLiteStore.open(path, busy_timeout=5.0) as s:
        locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            locker.execute("BEGIN IMMEDIATE")
            locker.execute("INSERT INTO kv VALUES (x'6f74686572', x'31')")
            async with anyio.create_task_group() as tg:
                tg.start_soon(set_key, s, b"k", b"v")
                await anyio.sleep(0.2)  # the commit keeps trying meanwhile
                locker.execute("COMMIT")
        finally:
            locker.close()
        assert await get_key(s, b"k") == b"v"
        assert await get_key(s, b"other") == b"1"


async def test_sqlite_failures_surface_as_store_errors(store: SQLiteStore) -> None:
    await set_key(store, b"k", b"1")
    with closing(sqlite3.connect(store.path)) as db, db:
        db.execute("ALTER TABLE kv RENAME TO kv_gone")  # sabotage, behind the store's back
    with pytest.raises(StoreUnavailableError, match="no such table"):
        await get_key(store, b"k")
    with pytest.raises(StoreUnavailableError, match="no such table"):
        await set_key(store, b"k", b"2")
    with closing(sqlite3.connect(store.path)) as db, db:
        db.execute("ALTER TABLE kv_gone RENAME TO kv")
    assert await get_key(store, b"k") == b"1"


@pytest.mark.parametrize("count", [1, 3, 256, 300])
async def test_get_many_answers_every_key_in_order(store: SQLiteStore, count: int) -> None:
    # get_many pads and splits its IN queries: every size must answer each key.
    async def fill(tr: Transaction) -> None:
        for i in range(0, 600, 2):
            tr.set(b"k/%03d" % i, b"v%d" % i)

    await store.transact(fill)
    keys = [b"k/%03d" % i for i in range(count)] + [b"k/000"]  # a repeat, too

    async def read(tr: Transaction) -> list[bytes | None]:
        tr.set(b"k/001", b"mine")  # read-your-writes through get_many
        return await get_many(tr, keys)

    want = [b"v%d" % i if i % 2 == 0 else None for i in range(count)] + [b"v0"]
    if count > 1:
        want[1] = b"mine"
    assert await store.transact(read) == want
