"""Reader connections of the SQLite store, and the janitor thread that tidies them.

A transaction reads at one WAL snapshot: the read transaction it opens on a
pooled connection at its first read, and holds until it commits or is
abandoned. Ending a snapshot (``ROLLBACK``) is a blocking call, and
``Transaction.cancel()`` must not block, so an abandoned snapshot is handed to
a janitor thread instead. Prompt ends matter: an open snapshot stops WAL
checkpoints from recycling the log, in this process and every other one.

The janitor also reclaims the snapshots of transactions that were dropped
without ``commit()`` or ``cancel()``, or that outlived the store's age limit.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Final

from ..._exceptions import StoreUnavailableError

_STOP: Final = object()
_SCAN_SECONDS: Final = 1.0


class Conn:
    """One pooled connection. ``lock`` is held by whichever thread uses ``db``."""

    __slots__ = ("__weakref__", "db", "lock", "owner", "since")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.lock = threading.Lock()
        self.owner: weakref.ref[object] | None = None
        self.since = 0.0

    def owned_by(self, owner: object) -> bool:
        ref = self.owner
        return ref is not None and ref() is owner

    def end_read(self) -> None:
        """End the open snapshot, if any (``lock`` held)."""
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")


class Pool:
    """Reader connections, checked out by one owner (a transaction) at a time."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        max_idle: int,
        reclaim_after: float,
        closed_message: str,
    ) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._reclaim_after = reclaim_after
        self._closed_message = closed_message
        self._lock = threading.Lock()  # guards the fields below; never held during I/O
        self._idle: list[Conn] = []
        self._out: set[Conn] = set()
        self._closed = False
        self._chores: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._janitor = threading.Thread(
            target=self._run_janitor, name="quickq-sqlite-janitor", daemon=True
        )
        self._janitor.start()

    def checkout(self, owner: object) -> Conn:
        """Take a connection for *owner* (worker thread: may open one).

        The connection may still hold a finished snapshot; the caller ends it
        with :meth:`Conn.end_read` under ``conn.lock`` before beginning its own.
        """
        with self._lock:
            if self._closed:
                raise StoreUnavailableError(self._closed_message)
            conn = self._idle.pop() if self._idle else None
            if conn is not None:
                self._lend(conn, owner)
                return conn
        conn = Conn(self._connect())
        with self._lock:
            if not self._closed:
                self._lend(conn, owner)
                return conn
        conn.db.close()
        raise StoreUnavailableError(self._closed_message)

    def _lend(self, conn: Conn, owner: object) -> None:
        conn.owner = weakref.ref(owner)
        conn.since = time.monotonic()
        self._out.add(conn)

    def checkin(self, conn: Conn, owner: object, *, clean: bool = False) -> None:
        """Give back *owner*'s connection. Never blocks; idempotent.

        Unless *clean* (the caller ended the snapshot), the janitor ends it soon.
        """
        with self._lock:
            if conn not in self._out or not conn.owned_by(owner):
                return
            self._out.discard(conn)
            conn.owner = None
            self._idle.append(conn)
            surplus = len(self._idle) > self._max_idle
        if surplus or not clean:
            self._chores.put(conn)

    def nudge(self) -> None:
        """Ask the janitor to look for abandoned connections now.

        Safe from ``__del__``: only an atomic queue append.
        """
        self._chores.put(None)

    def close(self) -> None:
        """Close every connection, lent or idle, and stop the janitor (blocking)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conns = self._idle + list(self._out)
            self._idle.clear()
            self._out.clear()
            for conn in conns:
                conn.owner = None
        for conn in conns:
            with conn.lock:
                _close_quietly(conn.db)
        self._chores.put(_STOP)
        self._janitor.join()

    # -- the janitor thread ---------------------------------------------------

    def _run_janitor(self) -> None:
        while True:
            try:
                chore = self._chores.get(timeout=_SCAN_SECONDS)
            except queue.Empty:
                chore = None
            if chore is _STOP:
                return
            if isinstance(chore, Conn):
                self._tidy(chore)
            self._reclaim()

    def _tidy(self, conn: Conn) -> None:
        with self._lock:
            if conn not in self._idle:
                return  # lent again already: its new owner ends the snapshot
            self._idle.remove(conn)
            surplus = len(self._idle) >= self._max_idle
        with conn.lock:
            try:
                conn.end_read()
            except sqlite3.Error:
                surplus = True
            if surplus:
                _close_quietly(conn.db)
                return
        with self._lock:
            if self._closed:
                _close_quietly(conn.db)
            else:
                self._idle.append(conn)

    def _reclaim(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [
                c
                for c in self._out
                if c.owner is None or c.owner() is None or now - c.since > self._reclaim_after
            ]
            for conn in stale:
                # The owner is gone, or too old to use its snapshot again: its
                # next read finds it no longer owns the connection.
                self._out.discard(conn)
                conn.owner = None
                self._idle.append(conn)
        for conn in stale:
            self._tidy(conn)


def _close_quietly(db: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        db.close()
