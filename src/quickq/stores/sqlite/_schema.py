"""The SQLite store's file format, connections, and the mapping of ``sqlite3`` errors.

One database file holds three tables:

- ``kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID``: the ordered key-value
  data. BLOBs compare with ``memcmp``, which is Python's ``bytes`` order.
- ``quickq_meta(name, value)``: ``format = 'quickq-kv'``, ``format_version``,
  and ``pruned_through`` (the newest version whose commit-log row may have been
  deleted).
- ``quickq_commits(version INTEGER PRIMARY KEY, ranges BLOB)``: the key ranges
  each recent commit wrote, for optimistic conflict checks across processes.
  Its largest ``version`` is the store's version (pruning keeps the newest
  row), so a commit writes no counter row of its own.

Only :mod:`quickq.stores.sqlite` uses this module; no ``sqlite3`` exception
leaves it unmapped.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Final, Literal

from ..._exceptions import StoreUnavailableError

Durability = Literal["full", "normal"]

FORMAT: Final = "quickq-kv"
FORMAT_VERSION: Final = 1

SELECT_VERSION: Final = "SELECT coalesce(max(version), 0) FROM quickq_commits"
SELECT_PRUNED: Final = "SELECT value FROM quickq_meta WHERE name = 'pruned_through'"

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS quickq_meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS quickq_commits (version INTEGER PRIMARY KEY, ranges BLOB NOT NULL)",
)
_META_ROWS: Final = (
    ("format", FORMAT),
    ("format_version", FORMAT_VERSION),
    ("pruned_through", 0),
)

# Primary result codes (https://sqlite.org/rescode.html).
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = (
    3,
    5,
    6,
    8,
    10,
    11,
    13,
    14,
    26,
)


def is_busy(exc: sqlite3.Error) -> bool:
    """True when *exc* is SQLITE_BUSY or SQLITE_LOCKED (a lock held too long)."""
    return _primary(exc) in (_BUSY, _LOCKED)


def is_disk_full(exc: sqlite3.Error) -> bool:
    return _primary(exc) == _FULL


def _primary(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def describe(exc: sqlite3.Error, *, busy_timeout: float) -> str:
    """A short, human reason for *exc* (no traceback, one line)."""
    code = _primary(exc)
    if code in (_BUSY, _LOCKED):
        return f"the database is locked by another connection (waited {busy_timeout:g} s)"
    if code == _NOTADB:
        return "the file is not a SQLite database"
    if code == _CORRUPT:
        return "the database file is corrupt"
    if code == _CANTOPEN:
        return (
            "cannot open or create the database files "
            "(missing directory, or the directory is not writable)"
        )
    if code == _READONLY:
        return "the database or its directory is read-only"
    if code == _PERM:
        return "permission denied"
    if code == _FULL:
        return "the disk is full"
    if code == _IOERR:
        return f"I/O error ({exc})"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def unavailable(path: str, exc: sqlite3.Error, *, busy_timeout: float) -> StoreUnavailableError:
    """Map *exc* to the store-unavailable error, naming the file."""
    return StoreUnavailableError(
        f"quickq SQLite store {path}: {describe(exc, busy_timeout=busy_timeout)}"
    )


def connect(
    path: str, *, durability: Durability, busy_timeout: float, reader: bool
) -> sqlite3.Connection:
    """Open one connection to an existing store file with quickq's settings.

    Raises ``sqlite3.Error``; callers map it. The connection is in autocommit
    mode (``isolation_level=None``): every transaction is an explicit ``BEGIN``.
    """
    db = sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,  # used by one worker thread at a time, under a lock
        cached_statements=64,
    )
    try:
        if reader:
            # Readers hold snapshots and never write: make that a guarantee.
            db.execute("PRAGMA query_only = ON")
        else:
            # FULL syncs the WAL at every commit: a commit survives power loss.
            # NORMAL syncs only at checkpoints: a commit survives a crash of the
            # process (kill -9) but the last ones may roll back on power loss.
            db.execute(f"PRAGMA synchronous = {durability.upper()}")
            if durability == "full":
                # Only macOS distinguishes fsync from a real flush to the medium.
                db.execute("PRAGMA fullfsync = ON")
                db.execute("PRAGMA checkpoint_fullfsync = ON")
    except BaseException:
        db.close()
        raise
    return db


def initialize(path: str, *, durability: Durability, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating if new) the store file at *path* and return its writer connection.

    Raises :class:`~quickq.StoreUnavailableError` with a one-line reason when the
    file is not a quickq store, is corrupt, is of a newer format, is locked
    beyond *busy_timeout*, or cannot be created or written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StoreUnavailableError(
            f"quickq SQLite store {path}: the directory {directory} does not exist"
        )
    if os.path.isdir(path):
        raise StoreUnavailableError(f"quickq SQLite store {path}: is a directory")
    try:
        db = connect(path, durability=durability, busy_timeout=busy_timeout, reader=False)
    except sqlite3.Error as exc:
        raise unavailable(path, exc, busy_timeout=busy_timeout) from None
    try:
        _initialize(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise unavailable(path, exc, busy_timeout=busy_timeout) from None
    except BaseException:
        db.close()
        raise
    return db


def _initialize(db: sqlite3.Connection, path: str) -> None:
    # Look before changing anything: someone else's database must not be
    # converted to WAL mode or given quickq's tables.
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "quickq_meta" not in tables:
        raise StoreUnavailableError(
            f"quickq SQLite store {path}: the database is not a quickq store "
            f"(it holds other tables: {', '.join(sorted(tables)[:5])})"
        )
    mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreUnavailableError(
            f"quickq SQLite store {path}: cannot switch the database to WAL mode (got {mode})"
        )
    if not tables:
        # Two processes may create the same new file at once: IF NOT EXISTS and
        # INSERT OR IGNORE under the write lock make that harmless.
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                db.execute(statement)
            db.executemany(
                "INSERT OR IGNORE INTO quickq_meta (name, value) VALUES (?, ?)", _META_ROWS
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    meta = dict(db.execute("SELECT name, value FROM quickq_meta").fetchall())
    if meta.get("format") != FORMAT:
        raise StoreUnavailableError(
            f"quickq SQLite store {path}: the database is not a quickq store (no format marker)"
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise StoreUnavailableError(
            f"quickq SQLite store {path}: unsupported format version {version!r} "
            f"(this quickq reads version {FORMAT_VERSION})"
        )
    missing = {"kv", "quickq_commits"} - {
        row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if missing or "pruned_through" not in meta:
        raise StoreUnavailableError(
            f"quickq SQLite store {path}: the database is damaged (missing {sorted(missing)})"
        )
