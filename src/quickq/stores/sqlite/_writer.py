"""The SQLite store's commit path: conflict check, apply, commit log, pruning.

A commit runs in a worker thread under a per-file lock of this process (so the
store objects of one process queue here, not in SQLite's sleeping busy
handler) and then under SQLite's own write lock (``BEGIN IMMEDIATE``, shared
with every other process). Holding both, it:

1. reads the store's version (the newest row of ``quickq_commits``);
2. if the transaction has read-conflict ranges and anything committed since its
   read version, compares them with the ranges those commits wrote, and fails
   with :class:`~quickq.ConflictError` on an overlap (or with
   :class:`~quickq.TransactionTooOldError` when those rows were pruned);
3. applies the writes and records its own write ranges as the next version;
4. commits: with ``synchronous=FULL`` the WAL is synced before ``COMMIT`` returns.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from ..._exceptions import (
    CommitUnknownResultError,
    ConflictError,
    StoreUnavailableError,
    TransactionTooOldError,
)
from .. import _ranges as ranges
from .._buffer import Known, Op, resolve
from .._faults import CommitFault
from .._protocol import Range
from ._schema import SELECT_PRUNED, SELECT_VERSION, is_busy, is_disk_full, unavailable

_PRUNE_EVERY: Final = 1.0  # seconds between commit-log prunes by one writer
_SAMPLE_EVERY: Final = 0.1  # seconds between the (time, version) samples pruning uses
_BUSY_FIRST_WAIT: Final = 50e-6  # seconds: the first wait for another process's write lock
_BUSY_MAX_WAIT: Final = 2e-3  # ... doubling up to this

_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _file_lock(path: str) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks.setdefault(os.path.realpath(path), threading.Lock())


@attrs.frozen
class Commit:
    """What one transaction asks the writer to commit."""

    read_version: int
    """The store version its reads saw; later commits are checked for conflicts."""
    read_conflicts: Sequence[Range]
    cleared: Sequence[Range]
    """Ranges cleared, applied before *ops*."""
    ops: Sequence[tuple[bytes, Op]]
    """Each written key's last op, one per key."""
    written: Sequence[Range]
    """Its write-conflict ranges, recorded in the commit log."""


class _Request:
    """One commit waiting in the writer's queue, and its outcome once decided."""

    __slots__ = ("commit", "done", "error")

    def __init__(self, commit: Commit) -> None:
        self.commit = commit
        self.done = False
        self.error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done = True


class Writer:
    """One store object's writer connection and commit log bookkeeping.

    *log_horizon*: seconds a commit-log row is kept (longer than any live
    transaction). *seen*: called with every store version the writer learns.
    """

    def __init__(
        self,
        path: str,
        db: sqlite3.Connection,
        *,
        busy_timeout: float,
        log_horizon: float,
        seen: Callable[[int], None],
        closed_message: str,
    ) -> None:
        self.path = path
        self.log_horizon = log_horizon
        self.scripted: deque[CommitFault | None] = deque()  # injected faults (tests)
        self._db = db
        self._busy_timeout = busy_timeout
        # The write lock is waited for in _begin, not in SQLite's busy handler.
        db.execute("PRAGMA busy_timeout = 0")
        self._seen = seen
        self._closed_message = closed_message
        self._lock = _file_lock(path)
        self._closed = False
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic, version)
        self._last_prune = time.monotonic()
        self._queue_lock = threading.Lock()  # guards _queue; never held during I/O
        self._queue: list[_Request] = []  # commits waiting for the lock

    def close(self) -> None:
        """Close the connection once any commit in progress is done (blocking)."""
        with self._lock:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailableError:
        return unavailable(self.path, exc, busy_timeout=self._busy_timeout)

    def commit(self, commit: Commit) -> None:
        """Commit one transaction's writes, or raise with nothing written (worker thread).

        Group commit: the thread that gets the lock commits every transaction
        queued on this writer by then, in one SQLite transaction (one fsync),
        each under a savepoint and a version of its own, in queue order (a
        serial order); the others find their outcome decided when they get
        the lock. None returns before the shared ``COMMIT`` has returned.
        """
        request = _Request(commit)
        with self._queue_lock:
            self._queue.append(request)
        with self._lock:
            if not request.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_batch(batch)
        if request.error is not None:
            raise request.error

    def _commit_batch(self, batch: list[_Request]) -> None:
        """Decide every request of *batch* (both locks held)."""
        db = self._db
        if self._closed:
            for request in batch:
                request.fail(StoreUnavailableError(self._closed_message))
            return
        try:
            self._begin(db)
            current = int(db.execute(SELECT_VERSION).fetchone()[0])
        except sqlite3.Error as exc:
            _rollback(db)
            for request in batch:  # one exception each: their threads raise them
                request.fail(self._unavailable(exc))
            return
        try:
            self._seen(current)
            # A lone commit needs no savepoint: if it fails, all is rolled back.
            grouped = len(batch) > 1
            applied: list[tuple[_Request, CommitFault | None]] = []
            for request in batch:
                fault = self.scripted.popleft() if self.scripted else None
                if grouped:
                    db.execute("SAVEPOINT quickq_tr")
                try:
                    self._check_and_apply(db, current, request.commit)
                    if fault is CommitFault.CONFLICT:
                        raise ConflictError("commit failed (injected: conflict)")
                    if fault is CommitFault.UNKNOWN_NOT_APPLIED:
                        raise CommitUnknownResultError(
                            "commit result unknown (injected: not applied)"
                        )
                    db.execute(
                        "INSERT INTO quickq_commits (version, ranges) VALUES (?, ?)",
                        (current + 1, ranges.encode(ranges.coalesce(request.commit.written))),
                    )
                except (ConflictError, TransactionTooOldError, CommitUnknownResultError) as exc:
                    if grouped:
                        db.execute("ROLLBACK TO quickq_tr")
                    request.fail(exc)
                except sqlite3.Error as exc:
                    if grouped:
                        db.execute("ROLLBACK TO quickq_tr")
                    request.fail(self._unavailable(exc))
                else:
                    current += 1
                    applied.append((request, fault))
                if grouped:
                    db.execute("RELEASE quickq_tr")
            if not applied:
                _rollback(db)  # nothing to commit (and a lone failure's partial writes)
                return
            self._maybe_prune(db, current)
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                for request, _ in applied:
                    if is_busy(exc) or is_disk_full(exc):
                        request.fail(self._unavailable(exc))
                    else:
                        # An I/O error while syncing: the commits may be in the WAL or not.
                        request.fail(
                            CommitUnknownResultError(
                                f"quickq SQLite store {self.path}: commit failed, "
                                f"outcome unknown ({exc})"
                            )
                        )
                return
            self._seen(current)
            for request, fault in applied:
                if fault is CommitFault.UNKNOWN_APPLIED:
                    request.fail(
                        CommitUnknownResultError("commit result unknown (injected: applied)")
                    )
                request.done = True
        except BaseException as exc:  # SQLite failing, a bug, an interrupt: nothing committed
            _rollback(db)
            for request in batch:
                if not request.done:
                    request.fail(self._unavailable(exc) if isinstance(exc, sqlite3.Error) else exc)
            if not isinstance(exc, Exception):
                raise

    def _begin(self, db: sqlite3.Connection) -> None:
        """Take SQLite's write lock, waiting up to *busy_timeout* for another process.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ms and longer between
        tries, so a writer sleeps on long after a lock held for a fraction of
        a millisecond; polling from 50 us, doubling to 2 ms, measured about
        twice the commit rate of four processes writing one file. Once
        ``BEGIN IMMEDIATE`` holds the lock, no later statement of a WAL write
        transaction waits for one.
        """
        wait = _BUSY_FIRST_WAIT
        deadline: float | None = None
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.Error as exc:
                if not is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._busy_timeout
                if now >= deadline:
                    raise
                time.sleep(min(wait, deadline - now))
                wait = min(2 * wait, _BUSY_MAX_WAIT)

    def _check_and_apply(self, db: sqlite3.Connection, current: int, commit: Commit) -> None:
        """Check *commit* for conflicts at *current*, then apply its writes."""
        read_version = commit.read_version
        if commit.read_conflicts and current > read_version:
            if read_version < int(db.execute(SELECT_PRUNED).fetchone()[0]):
                raise TransactionTooOldError(
                    "transaction too old: the commits since its read version were forgotten"
                )
            reads = ranges.RangeSet(commit.read_conflicts)
            rows = db.execute(
                "SELECT ranges FROM quickq_commits WHERE version > ?", (read_version,)
            )
            for (blob,) in rows:
                if reads.overlaps_any(ranges.decode(blob)):
                    rows.close()
                    raise ConflictError("a value read by this transaction changed before commit")
        for begin, end in commit.cleared:
            db.execute("DELETE FROM kv WHERE key >= ? AND key < ?", (begin, end))
        # Each key has one op, so their order does not matter: batch them.
        sets: list[tuple[bytes, bytes]] = []
        deletes: list[tuple[bytes]] = []
        for key, op in commit.ops:
            if isinstance(op, Known):
                value = op.value
            else:  # an atomic op (add, compare-and-clear): applied to the stored value
                row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
                value = resolve(op, None if row is None else bytes(row[0]))
            if value is None:
                deletes.append((key,))
            else:
                sets.append((key, value))
        if deletes:
            db.executemany("DELETE FROM kv WHERE key = ?", deletes)
        if sets:
            db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", sets)

    def _maybe_prune(self, db: sqlite3.Connection, version: int) -> None:
        """Forget commit-log rows older than the horizon (both locks held).

        Versions grow with time, so a (time, version) sample from this writer's
        own commits bounds which rows are older than the horizon, whichever
        process wrote them.
        """
        now = time.monotonic()
        if not self._samples or now - self._samples[-1][0] >= _SAMPLE_EVERY:
            self._samples.append((now, version))
        if now - self._last_prune < _PRUNE_EVERY:
            return
        self._last_prune = now
        cutoff = now - self.log_horizon
        through = None
        while self._samples and self._samples[0][0] < cutoff:
            through = self._samples.popleft()[1]
        if through is None:
            return
        # Keep the newest row: its version is the store's version.
        through = min(through, version - 1)
        db.execute("DELETE FROM quickq_commits WHERE version <= ?", (through,))
        db.execute(
            "UPDATE quickq_meta SET value = max(value, ?) WHERE name = 'pruned_through'",
            (through,),
        )

    def prune_now(self) -> None:
        """Make the next commit prune (tests)."""
        self._last_prune = 0.0


def _rollback(db: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if db.in_transaction:
            db.execute("ROLLBACK")
