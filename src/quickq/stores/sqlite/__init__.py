"""The SQLite store: quickq's durable embedded default, for one machine and many processes.

:class:`SQLiteStore` has exactly the semantics of the in-memory reference store
(:mod:`quickq.stores.memory`), on one database file that several processes
share:

- **Snapshots.** A transaction reads at one consistent version: at its first
  read it opens a WAL read transaction on a pooled connection and keeps it
  until it commits or is abandoned. (Like FoundationDB, and unlike the memory
  store, the read version is taken at the first read, not at creation.)
- **Optimistic commits, serializable across processes.** Writes are buffered
  (read-your-writes, limits,
  conflict ranges, as the memory store buffers them). At commit the store takes SQLite's write lock
  (``BEGIN IMMEDIATE``), checks the transaction's read-conflict ranges against
  the key ranges written by every commit after its read version (a commit-log
  table), applies the writes, records its own write ranges under a new version,
  and commits, or raises :class:`~quickq.ConflictError` with nothing written.
  Snapshot reads take no conflict; a limited range read conflicts only on what
  it observed. Commits made at the same time through one store object share
  one SQLite transaction and one fsync (group commit), each checked and
  versioned on its own.
- **Durability.** ``durability="full"`` (the default) runs SQLite with
  ``synchronous=FULL``: ``commit()`` returns only once the commit is on stable
  storage and survives a power loss. ``durability="normal"`` syncs the WAL only
  at checkpoints, several times faster: a commit still survives the process
  being killed (``kill -9``), but after a power loss or OS crash the most
  recent commits may be gone (the file stays consistent: all or nothing).
- **Off the event loop where it can block.** A commit (which waits for the
  write lock and the fsync) runs in a worker thread (``anyio.to_thread``, on
  trio or asyncio); a read-only commit and ``cancel()`` need none. Reads run
  on the event loop: a WAL reader never waits for a writer, and a point read
  or a short range scan from SQLite's page cache takes microseconds, far less
  than a thread hand-off. ``threaded_reads=True`` moves reads to worker threads
  too, for files on slow or network disks where a cold read may take long.
- **Errors.** No ``sqlite3`` exception escapes: a lock held beyond
  ``busy_timeout``, a corrupt or foreign file, a read-only directory or a full
  disk raise :class:`~quickq.StoreUnavailableError` with a one-line reason; a
  failure of the final ``COMMIT`` statement raises
  :class:`~quickq.CommitUnknownResultError`.

Watches (:class:`~quickq.stores.SupportsWatch`): a commit through the same
:class:`SQLiteStore` object wakes waiters at once; commits by other processes
(or other store objects) are noticed by a point read every ``poll_interval``.
"""

from ..._exports import publish_exports as _publish_exports
from ._store import SQLiteStore as SQLiteStore
from ._store import SQLiteTransaction as SQLiteTransaction

__all__ = ["SQLiteStore", "SQLiteTransaction"]

_publish_exports(globals(), __all__, __name__)
