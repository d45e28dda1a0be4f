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
from collections.abc import Callable
from typing import Final

from .._exceptions import (
    CommitUnknownResultError,
    ConflictError,
    StoreUnavailableError,
    TransactionTooOldError,
)
from . import _sqlite_ranges as ranges
from ._buffer import Delta, Known, Range, add_to_counter
from ._sqlite_schema import SELECT_PRUNED, SELECT_VERSION, is_busy, is_disk_full, unavailable
from .memory import CommitFault

_PRUNE_EVERY: Final = 1.0  # seconds between commit-log prunes by one writer
_SAMPLE_EVERY: Final = 0.1  # seconds between the (time, version) samples pruning uses

_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _file_lock(path: str) -> threading.Lock:
    with _file_locks_guard:
        return _file_locks.setdefault(os.path.realpath(path), threading.Lock())


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
        self._seen = seen
        self._closed_message = closed_message
        self._lock = _file_lock(path)
        self._closed = False
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic, version)
        self._last_prune = time.monotonic()

    def close(self) -> None:
        """Close the connection once any commit in progress is done (blocking)."""
        with self._lock:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailableError:
        return unavailable(self.path, exc, busy_timeout=self._busy_timeout)

    def commit(
        self,
        read_version: int,
        read_conflicts: list[Range],
        cleared: list[Range],
        ops: list[tuple[bytes, object]],
        written: list[Range],
    ) -> None:
        """Commit one transaction's writes, or raise with nothing written (worker thread)."""
        with self._lock:
            if self._closed:
                raise StoreUnavailableError(self._closed_message)
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from None
            fault = self.scripted.popleft() if self.scripted else None
            try:
                version = self._check_and_apply(db, read_version, read_conflicts, cleared, ops)
                if fault is CommitFault.CONFLICT:
                    raise ConflictError("commit failed (injected: conflict)")
                if fault is CommitFault.UNKNOWN_NOT_APPLIED:
                    raise CommitUnknownResultError("commit result unknown (injected: not applied)")
                db.execute(
                    "INSERT INTO quickq_commits (version, ranges) VALUES (?, ?)",
                    (version, ranges.encode(ranges.coalesce(written))),
                )
                self._maybe_prune(db, version)
            except BaseException as exc:
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise self._unavailable(exc) from None
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                if is_busy(exc) or is_disk_full(exc):
                    raise self._unavailable(exc) from None
                # An I/O error while syncing: the commit may be in the WAL or not.
                raise CommitUnknownResultError(
                    f"quickq SQLite store {self.path}: commit failed, outcome unknown ({exc})"
                ) from None
            self._seen(version)
            if fault is CommitFault.UNKNOWN_APPLIED:
                raise CommitUnknownResultError("commit result unknown (injected: applied)")

    def _check_and_apply(
        self,
        db: sqlite3.Connection,
        read_version: int,
        read_conflicts: list[Range],
        cleared: list[Range],
        ops: list[tuple[bytes, object]],
    ) -> int:
        current = int(db.execute(SELECT_VERSION).fetchone()[0])
        self._seen(current)
        if read_conflicts and current > read_version:
            if read_version < int(db.execute(SELECT_PRUNED).fetchone()[0]):
                raise TransactionTooOldError(
                    "transaction too old: the commits since its read version were forgotten"
                )
            reads = ranges.RangeSet(read_conflicts)
            rows = db.execute(
                "SELECT ranges FROM quickq_commits WHERE version > ?", (read_version,)
            )
            for (blob,) in rows:
                if reads.overlaps_any(ranges.decode(blob)):
                    rows.close()
                    raise ConflictError("a value read by this transaction changed before commit")
        for begin, end in cleared:
            db.execute("DELETE FROM kv WHERE key >= ? AND key < ?", (begin, end))
        # Each key has one op, so their order does not matter: batch them.
        sets: list[tuple[bytes, bytes]] = []
        deletes: list[tuple[bytes]] = []
        for key, op in ops:
            if isinstance(op, Known):
                if op.value is None:
                    deletes.append((key,))
                else:
                    sets.append((key, op.value))
            else:
                assert isinstance(op, Delta)
                row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
                sets.append((key, add_to_counter(None if row is None else bytes(row[0]), op.delta)))
        if deletes:
            db.executemany("DELETE FROM kv WHERE key = ?", deletes)
        if sets:
            db.executemany("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", sets)
        return current + 1

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
