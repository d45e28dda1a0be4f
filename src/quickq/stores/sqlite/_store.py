"""The SQLite store object and its transactions: snapshots on pooled reader
connections, buffered writes, and commits handed to the writer thread (see
the package docstring for the guarantees).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import trio

from ..._exceptions import (
    StoreUnavailableError,
    TransactionClosedError,
    TransactionTooOldError,
)
from .._buffer import BufferedWrites, WriteBuffer
from .._clock import loop_time
from .._faults import CommitFault
from .._protocol import KeyValue, Limits, Transaction
from .._retry import run_transaction
from .._watchers import Watchers
from ._pool import Conn, Pool
from ._schema import (
    SELECT_VERSION,
    Durability,
    connect,
    initialize,
    unavailable,
)
from ._writer import Commit, Writer

if TYPE_CHECKING:
    import outcome

T = TypeVar("T")

__all__ = ["SQLiteStore", "SQLiteTransaction"]

_MAX_IDLE_READERS: Final = 8
_SELECT_VALUE: Final = "SELECT value FROM kv WHERE key = ?"
_IN_MAX: Final = 256  # keys per IN query of get_many


class SQLiteStore:
    """A durable, ordered, transactional key-value store in one SQLite file.

    Open it with :meth:`open`, close it with :meth:`aclose` (or use it as an
    async context manager). Safe to use from many tasks at once, on trio or
    asyncio, and from many processes on the same file. See the module
    docstring for the guarantees and ``docs/sqlite.md`` for guidance.
    """

    def __init__(
        self,
        path: str,
        writer: sqlite3.Connection,
        *,
        durability: Durability,
        poll_interval: float,
        busy_timeout: float,
        limits: Limits,
        clock: Callable[[], float],
        retry_limit: int | None,
        max_threads: int,
        threaded_reads: bool = False,
    ) -> None:
        """Not public: use :meth:`open`, which validates the file first."""
        self.path = path
        self.durability: Durability = durability
        self.poll_interval = poll_interval
        self.busy_timeout = busy_timeout
        self.limits = limits
        self._clock = clock
        self._retry_limit = retry_limit
        self._max_threads = max_threads
        self.threaded_reads = threaded_reads
        self._limiter: tuple[object, anyio.CapacityLimiter] | None = None
        self._closed = False
        self._closed_message = f"quickq SQLite store {path}: the store is closed"
        self._version_hint = 0  # the newest version this object has seen
        self._watchers = Watchers()  # woken by this object's commits, on the loop
        # Keep commit-log rows long enough for any live transaction to be checked.
        age = limits.transaction_seconds
        horizon = max(2 * age, age + 5.0)
        self._writer = Writer(
            path,
            writer,
            busy_timeout=busy_timeout,
            log_horizon=horizon,
            seen=self._note_version,
            closed_message=self._closed_message,
        )
        self._pool = Pool(
            self._connect_reader,
            max_idle=_MAX_IDLE_READERS,
            reclaim_after=horizon,
            closed_message=self._closed_message,
        )

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "full",
        poll_interval: float = 0.01,
        busy_timeout: float = 5.0,
        limits: Limits = Limits(),
        clock: Callable[[], float] = loop_time,
        retry_limit: int | None = None,
        max_threads: int = 8,
        threaded_reads: bool = False,
    ) -> SQLiteStore:
        """Open the store in the file at *path*, creating it if it does not exist.

        Raises :class:`~quickq.StoreUnavailableError` with a one-line reason when
        the file is not a quickq store (another SQLite database, or not a
        database at all), is corrupt, is locked by another process for longer
        than *busy_timeout* seconds, or cannot be created or written (for
        example in a read-only directory).

        - *durability*: ``"full"`` (default): a commit is on stable storage when
          ``commit()`` returns. ``"normal"``: several times faster; commits
          survive the process being killed but the last ones may be lost on
          power loss or an OS crash. Each process chooses its own.
        - *poll_interval*: seconds between the point reads with which
          :meth:`wait_for_change` notices other processes' commits (a read
          of the wake-up keys costs tens of microseconds, so 10 ms costs an
          idle consumer well under 1 % of a core and bounds how long a job
          from another process waits to be noticed).
        - *busy_timeout*: seconds to wait for a lock held by another process.
        - *limits*: size and age limits (FoundationDB's by default). Every
          process on one file should use the same age limit.
        - *clock*: the clock of the transaction age limit.
        - *retry_limit*: retries before :meth:`transact` gives up (default: never).
        - *max_threads*: worker threads this store uses at once.
        - *threaded_reads*: run reads in worker threads rather than on the
          event loop (for slow or network disks; each read then costs a
          thread hand-off).
        """
        if durability not in ("full", "normal"):
            raise ValueError(f"durability must be 'full' or 'normal', not {durability!r}")
        if poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        if busy_timeout < 0:
            raise ValueError("busy_timeout must be >= 0")
        if max_threads < 1:
            raise ValueError("max_threads must be >= 1")
        name = os.fspath(path)
        if name == ":memory:" or name.startswith("file:"):
            raise ValueError("SQLiteStore needs a file path (use MemoryStore for memory)")

        def open_sync() -> tuple[sqlite3.Connection, int]:
            writer = initialize(name, durability=durability, busy_timeout=busy_timeout)
            try:
                return writer, int(writer.execute(SELECT_VERSION).fetchone()[0])
            except sqlite3.Error as exc:
                writer.close()
                raise unavailable(name, exc, busy_timeout=busy_timeout) from None

        # Shielded: a cancellation must not strand the opened connection; it
        # reaches the caller, who owns the store by then, at its next checkpoint.
        with anyio.CancelScope(shield=True):
            writer, version = await anyio.to_thread.run_sync(open_sync)
        store = cls(
            name,
            writer,
            durability=durability,
            poll_interval=poll_interval,
            busy_timeout=busy_timeout,
            limits=limits,
            clock=clock,
            retry_limit=retry_limit,
            max_threads=max_threads,
            threaded_reads=threaded_reads,
        )
        store._version_hint = version
        return store

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the Store protocol ---------------------------------------------------

    def create_transaction(self) -> SQLiteTransaction:
        """Begin a transaction. It takes its snapshot at its first read."""
        if self._closed:
            raise StoreUnavailableError(self._closed_message)
        return SQLiteTransaction(self, self._version_hint, self._clock())

    async def transact(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """As Store.transact, giving up after *retry_limit* retries when one was set."""
        return await run_transaction(self.create_transaction, fn, retry_limit=self._retry_limit)

    async def aclose(self) -> None:
        """Close every connection; open transactions become unusable. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        self._pool.close()
        self._writer.close()

    async def wait_for_change(self, key: bytes, seen: bytes | None) -> None:
        """Return once the value at *key* differs from *seen* (SupportsWatch).

        A commit through this store object wakes the waiter at once; other
        writers are noticed by a point read every ``poll_interval`` seconds.
        """
        while True:
            # Register before reading, so a commit in between is not missed.
            event = self._watchers.add(key)
            try:
                if await self._latest(key) != seen:
                    return
                with anyio.move_on_after(self.poll_interval):
                    await event.wait()
            finally:
                self._watchers.discard(key, event)

    # -- test helpers ---------------------------------------------------------

    def inject(self, *faults: CommitFault | None) -> None:
        """Script the outcome of the next commits that write, one fault each (tests).

        As :meth:`MemoryStore.inject <quickq.stores.MemoryStore.inject>`: ``None``
        lets that commit succeed; a commit that really conflicts consumes its
        fault and fails with :class:`~quickq.ConflictError` whatever the fault.
        """
        self._writer.scripted.extend(faults)

    # -- internals: threads ---------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking *fn* in a worker thread (the store's one way off the loop).

        Once started it runs to its end, and the caller waits for it (as with
        ``anyio.to_thread``). On trio the hand-off is trio's own low-level one,
        without a yield to take a free thread: ``anyio.to_thread`` cost about
        50-75 us more a commit, a quarter of a small commit's CPU. (On asyncio,
        the loop's executor measured no faster than anyio's.)
        """
        if self._closed:
            raise StoreUnavailableError(self._closed_message)
        limiter = self._thread_limiter()
        if not trio.lowlevel.in_trio_task():
            return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        try:
            return await _in_trio_thread(functools.partial(fn, *args))
        finally:
            limiter.release()

    def _thread_limiter(self) -> anyio.CapacityLimiter:
        # A limiter belongs to one event loop; a store may outlive its first one.
        token = anyio.lowlevel.current_token()
        if self._limiter is None or self._limiter[0] != token:
            self._limiter = (token, anyio.CapacityLimiter(self._max_threads))
        return self._limiter[1]

    def _connect_reader(self) -> sqlite3.Connection:
        try:
            return connect(
                self.path, durability=self.durability, busy_timeout=self.busy_timeout, reader=True
            )
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailableError:
        return unavailable(self.path, exc, busy_timeout=self.busy_timeout)

    def _note_version(self, version: int) -> None:
        if version > self._version_hint:
            self._version_hint = version

    async def _latest(self, key: bytes) -> bytes | None:
        """The latest committed value of *key*: on the loop, as reads are, unless
        reads are threaded (a watch's poll then costs no thread hand-off)."""
        if self.threaded_reads:
            return await self._run(self._point_read, key)
        if self._closed:
            raise StoreUnavailableError(self._closed_message)
        await anyio.lowlevel.checkpoint_if_cancelled()
        return self._point_read(key)

    def _point_read(self, key: bytes) -> bytes | None:
        """Read the latest committed value of *key* (blocking)."""
        conn = self._pool.checkout(self)
        try:
            with conn.lock:
                conn.end_read()
                row = conn.db.execute(_SELECT_VALUE, (key,)).fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        finally:
            self._pool.checkin(conn, self, clean=True)
        return None if row is None else bytes(row[0])


def _select_many(db: sqlite3.Connection, *, keys: list[bytes]) -> dict[bytes, bytes | None]:
    """The stored values of *keys* (None: absent), by ``IN`` queries.

    One ``IN`` query costs a quarter of the CPU of point queries for 100
    keys. Each query's list is padded (with a repeated key) to a power of two,
    so a handful of statements serve every size from SQLite's statement cache.
    """
    out: dict[bytes, bytes | None] = dict.fromkeys(keys)
    for start in range(0, len(keys), _IN_MAX):
        chunk = keys[start : start + _IN_MAX]
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += [chunk[-1]] * (size - len(chunk))
        for key, value in db.execute(_select_in(size), chunk):
            out[bytes(key)] = bytes(value)
    return out


def _snapshot_version(db: sqlite3.Connection) -> int:
    """The store version of the snapshot *db* reads (the read version)."""
    return int(db.execute(SELECT_VERSION).fetchone()[0])


@functools.cache
def _select_in(size: int) -> str:
    return f"SELECT key, value FROM kv WHERE key IN ({', '.join('?' * size)})"


async def _in_trio_thread(call: Callable[[], T]) -> T:
    """Run *call* in one of trio's cached threads; wait for it, uncancellably."""
    token = trio.lowlevel.current_trio_token()
    task = trio.lowlevel.current_task()

    def deliver(result: outcome.Outcome[T]) -> None:
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    trio.lowlevel.start_thread_soon(call, deliver)
    result: T = await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
    return result


class SQLiteTransaction(BufferedWrites):
    """A transaction on a :class:`SQLiteStore` (see :class:`~quickq.stores.Transaction`)."""

    def __init__(self, store: SQLiteStore, version_hint: int, started: float) -> None:
        self._store = store
        # Until a read takes a snapshot, read-conflict ranges added by hand are
        # checked from the newest version this process knew of at creation.
        self._version_hint = version_hint
        self._started = started
        self._clock = store._clock
        self._buffer = WriteBuffer(store.limits)
        self._closed = False
        self._conn: Conn | None = None
        self._read_version: int | None = None
        self._start_lock = threading.Lock()

    def __del__(self) -> None:
        # Dropped while holding a snapshot: let the janitor reclaim it at once
        # rather than at its next periodic scan.
        if getattr(self, "_conn", None) is not None:
            self._store._pool.nudge()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
        conn, self._conn = self._conn, None
        if conn is None:
            return
        clean = False
        # Ending a WAL read is as quick as a read: where reads run on the loop,
        # end it here rather than wake the janitor thread for it.
        if not self._store.threaded_reads and conn.lock.acquire(blocking=False):
            try:
                if conn.owned_by(self):
                    conn.end_read()
                    clean = True
            except sqlite3.Error:
                clean = False
            finally:
                conn.lock.release()
        self._store._pool.checkin(conn, self, clean=clean)

    # -- reads (on the loop, or in a worker thread) ---------------------------

    def _in_snapshot(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run *read* on this transaction's snapshot, taking it first if needed."""
        store = self._store
        try:
            conn = self._conn or self._take_snapshot()
            with conn.lock:
                if not conn.owned_by(self):
                    if self._closed:
                        raise TransactionClosedError("transaction used after commit or cancel")
                    raise TransactionTooOldError("transaction too old: its snapshot was released")
                return read(conn.db)
        except sqlite3.Error as exc:
            raise store._unavailable(exc) from None

    def _take_snapshot(self) -> Conn:
        store = self._store
        with self._start_lock:
            if self._conn is not None:
                return self._conn
            conn = store._pool.checkout(self)
            try:
                with conn.lock:
                    conn.end_read()
                    conn.db.execute("BEGIN")
                    # The first read fixes the WAL snapshot. On the loop, its
                    # version is read only if the transaction commits writes
                    # (a third of a read-only transaction's statements); in a
                    # worker thread it is read here, off the loop.
                    if store.threaded_reads:
                        self._read_version = _snapshot_version(conn.db)
                        store._note_version(self._read_version)
            except BaseException:
                store._pool.checkin(conn, self)
                raise
            self._conn = conn
        if self._closed:  # cancelled meanwhile (cancel() does not wait for us)
            self._close()
            raise TransactionClosedError("transaction cancelled during a read")
        return conn

    def _commit_read_version(self) -> int:
        """The version a commit checks conflicts from: its snapshot's, read now if
        not yet (see _take_snapshot); without a snapshot (none taken, or the
        janitor released it), the newest known at creation, which is older, so
        checks more commits, never fewer."""
        if self._read_version is not None:
            return self._read_version
        conn = self._conn
        if conn is not None:
            store = self._store
            with conn.lock:
                if conn.owned_by(self):
                    try:
                        version = _snapshot_version(conn.db)
                    except sqlite3.Error as exc:
                        raise store._unavailable(exc) from None
                    store._note_version(version)
                    return version
        return self._version_hint

    async def _read_key(self, key: bytes) -> bytes | None:
        def read(db: sqlite3.Connection) -> bytes | None:
            row = db.execute(_SELECT_VALUE, (key,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(read)

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """Run *read* on this transaction's snapshot, on the loop or in a thread."""
        store = self._store
        if store.threaded_reads:
            return await store._run(self._in_snapshot, read)
        if store._closed:
            raise StoreUnavailableError(store._closed_message)
        await anyio.lowlevel.checkpoint_if_cancelled()
        return self._in_snapshot(read)

    # -- the Transaction protocol ---------------------------------------------

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        """As Transaction.get: the first read of a transaction takes its snapshot."""
        self._check_open()
        return await self._buffer.get(key, snapshot, self._read_key)

    async def get_many(
        self, keys: Sequence[bytes], *, snapshot: bool = False
    ) -> list[bytes | None]:
        """The values of *keys* (SupportsGetMany): one pass over the snapshot for
        all of them, not one read each; the same conflicts as that many gets."""
        self._check_open()
        keys = list(keys)
        if not keys:
            return []
        stored = await self._read(functools.partial(_select_many, keys=keys))
        # The buffer answers from this transaction's writes first, as for get.
        lookup = self._buffer.lookup
        return [lookup(key, snapshot, stored.__getitem__) for key in keys]

    async def get_range(
        self,
        begin: bytes,
        end: bytes,
        *,
        limit: int = 0,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> list[KeyValue]:
        """As Transaction.get_range, on the same snapshot as every other read of
        the transaction (the first read takes it); bounds must be bytes."""
        self._check_open()
        if not (isinstance(begin, bytes) and isinstance(end, bytes)):
            raise TypeError("range bounds are bytes")
        buffer = self._buffer
        if limit < 0 or begin >= end:
            return buffer.read_range(begin, end, limit, reverse, snapshot, ())
        # Fetch only as many stored pairs as the merge with our writes can use.
        want = limit + len(list(buffer.ops.irange(begin, end, (True, False)))) + 1 if limit else 0
        cleared = list(buffer.cleared)
        order = "DESC" if reverse else "ASC"
        sql = f"SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key {order}"

        def scan(db: sqlite3.Connection) -> list[KeyValue]:
            if want and not cleared:
                rows = db.execute(sql + " LIMIT ?", (begin, end, want)).fetchall()
                return [(bytes(k), bytes(v)) for k, v in rows]
            out: list[KeyValue] = []
            cursor = db.execute(sql, (begin, end))
            try:
                for k, v in cursor:
                    if any(b <= k < e for b, e in cleared):
                        continue
                    out.append((bytes(k), bytes(v)))
                    if want and len(out) >= want:
                        break
            finally:
                cursor.close()
            return out

        stored = await self._read(scan)
        return buffer.read_range(begin, end, limit, reverse, snapshot, stored)

    async def commit(self) -> None:
        """Commit atomically and durably (per the store's durability), or raise."""
        self._check_open()
        store = self._store
        buffer = self._buffer
        if buffer.is_read_only:
            self._close()  # the janitor ends the snapshot: no thread hand-off
            return
        try:
            buffer.check_size()  # reads count too, and may have come last
        except BaseException:
            self._close()
            raise
        try:
            read_version = self._commit_read_version()
        except BaseException:
            self._close()
            raise
        request = Commit(
            read_version=read_version,
            read_conflicts=buffer.read_conflicts,
            cleared=buffer.cleared,
            ops=list(buffer.ops.items()),
            written=buffer.write_conflicts,
        )

        # End the snapshot before the hand-off (on the loop, where that is as
        # quick as a read; else the janitor does): the thread only commits.
        self._close()
        await store._run(store._writer.commit, request)
        store._watchers.wake(request.cleared, (key for key, _ in request.ops))

    def cancel(self) -> None:
        """As Transaction.cancel: the snapshot's reader connection goes back to the pool."""
        self._close()
