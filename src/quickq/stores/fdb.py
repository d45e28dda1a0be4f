"""The FoundationDB store: quickq on the distributed engine it was designed for.

This is the only module of quickq that loads FoundationDB's native client
library (``libfdb_c``), and it does so lazily, when a store is opened::

    from quickq.stores.fdb import FoundationDBStore

    async with await FoundationDBStore.open("/etc/foundationdb/fdb.cluster",
                                            prefix=b"tenant-42/") as store:
        ...

It implements :class:`~quickq.stores.Store` on FoundationDB's own transactions,
without ever blocking the event loop's thread (it runs on trio and asyncio):

- every FoundationDB future is awaited through its ``on_ready`` callback, which
  wakes the waiting task thread-safely (``quickq.stores._fdb_futures``); a
  cancelled task cancels its future;
- :meth:`FoundationDBStore.transact` is FoundationDB's retry loop made async
  (``@fdb.transactional`` would block the thread): run the body, await the
  commit, and on an error await ``on_error``, which backs off and resets the
  transaction, or re-raises what is not retryable. The retry limit and the
  timeout are FoundationDB transaction options, so the client enforces them;
- range reads are paged asynchronously, one future per page, honouring
  ``limit``, ``reverse`` and ``snapshot``;
- FoundationDB errors are mapped to quickq's exceptions at this boundary
  (table in ``quickq.stores._fdb_errors``);
- watches implement :class:`~quickq.stores.SupportsWatch`.

Keys are given to the store already encoded (quickq encodes them with
``fdb.tuple``); the store only prepends its raw key *prefix*, which isolates
tenants that share a cluster. See ``docs/foundationdb.md``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final, TypeVar

import attrs

from .._exceptions import (
    CommitUnknownResultError,
    KeyTooLargeError,
    StoreError,
    StoreUnavailableError,
    TransactionClosedError,
    TransactionTooLargeError,
    ValueTooLargeError,
)
from . import _fdb_errors as codes
from ._fdb_errors import map_error, retry_code
from ._fdb_futures import wait_ready
from ._limits import (
    add_bytes,
    clear_bytes,
    clear_range_bytes,
    key_range_bytes,
    range_bytes,
    set_bytes,
)
from ._protocol import KeyValue, Limits, RetryState, Transaction

__all__ = [
    "DEFAULT_API_VERSION",
    "FoundationDBStore",
    "FoundationDBTransaction",
    "load_bindings",
]

T = TypeVar("T")

DEFAULT_API_VERSION: Final = 730
"""FoundationDB 7.3's API version; the ``foundationdb`` bindings are pinned to 7.3."""

_UINT64: Final = struct.Struct("<Q")


def load_bindings(api_version: int = DEFAULT_API_VERSION, *, module: Any = None) -> Any:
    """Import FoundationDB's Python bindings and select *api_version*; return the module.

    Selecting the API version loads the native client library, so this is
    where a missing client shows up: it raises
    :class:`~quickq.StoreUnavailableError` saying whether the ``foundationdb``
    package, the client library, or support for *api_version* is missing.
    The API version is process-wide: every store in a process must use the same.

    *module* replaces ``import fdb`` with an object of the same surface (tests
    use an in-process stand-in).
    """
    if module is None:
        try:
            import fdb
        except ImportError as exc:
            raise StoreUnavailableError(
                "the Python package 'foundationdb' is not installed: "
                "pip install 'foundationdb>=7.3,<7.4'"
            ) from exc
        module = fdb
    try:
        module.api_version(api_version)
    except RuntimeError as exc:
        # The bindings' own wording: version too new for the installed client
        # library, or already selected at another version in this process.
        raise StoreUnavailableError(
            f"the FoundationDB client library cannot serve API version {api_version}: {exc}"
        ) from exc
    except Exception as exc:  # the bindings raise a bare Exception for a missing library
        raise StoreUnavailableError(
            "the FoundationDB client library (libfdb_c) is not installed or cannot be "
            "loaded: install the FoundationDB 7.3 client package (foundationdb-clients) "
            f"on this machine ({exc})"
        ) from exc
    return module


class FoundationDBStore:
    """A :class:`~quickq.stores.Store` on a FoundationDB cluster.

    Open it with :meth:`open`. Every key the store reads or writes is
    ``prefix + key``; range reads return keys without the prefix. Safe to use
    from many tasks at once, on trio or asyncio.
    """

    def __init__(
        self,
        database: Any,
        bindings: Any,
        *,
        prefix: bytes = b"",
        transaction_timeout: float | None = 10.0,
        retry_limit: int | None = None,
        max_retry_delay: float = 1.0,
        limits: Limits = Limits(),
    ) -> None:
        """Wrap an open ``fdb.Database``; most callers use :meth:`open` instead."""
        if not isinstance(prefix, bytes):
            raise TypeError(f"prefix is bytes, not {type(prefix).__name__}")
        if prefix.startswith(b"\xff"):
            raise ValueError("prefix must not start with b'\\xff' (FoundationDB's system keys)")
        self._db = database
        self._fdb = bindings
        self.prefix: Final = prefix
        #: The limits as they apply to the keys callers pass: the prefix counts
        #: against FoundationDB's key limit.
        self.limits: Final = attrs.evolve(limits, key_bytes=limits.key_bytes - len(prefix))
        self._timeout_ms = (
            0 if transaction_timeout is None else max(1, round(transaction_timeout * 1000))
        )
        self._retry_limit = -1 if retry_limit is None else retry_limit
        self._max_retry_delay_ms = max(1, round(max_retry_delay * 1000))
        self._closed = False

    @classmethod
    async def open(
        cls,
        cluster_file: str | os.PathLike[str] | None = None,
        *,
        prefix: bytes = b"",
        api_version: int = DEFAULT_API_VERSION,
        transaction_timeout: float | None = 10.0,
        retry_limit: int | None = None,
        max_retry_delay: float = 1.0,
        probe_timeout: float = 5.0,
        knobs: Mapping[str, object] | None = None,
        bindings: Any = None,
    ) -> FoundationDBStore:
        """Load the client, connect to the cluster, and check that it answers.

        Raises :class:`~quickq.StoreUnavailableError` saying which is missing:
        the client library (or its support for *api_version*), the cluster file,
        or a cluster answering within *probe_timeout* seconds.

        - *cluster_file*: ``None`` uses ``FDB_CLUSTER_FILE`` or the platform's
          default (``/etc/foundationdb/fdb.cluster`` on Linux).
        - *prefix*: raw bytes prepended to every key, one per tenant.
        - *transaction_timeout*: seconds a :meth:`transact` call may take, all
          retries included (FoundationDB's ``timeout`` transaction option);
          then :class:`~quickq.TransactionTimedOutError`. ``None``: no limit.
        - *retry_limit*: retries after which :meth:`transact` raises the last
          retryable error (``retry_limit`` option). ``None``: no limit.
        - *max_retry_delay*: cap, in seconds, of ``on_error``'s backoff.
        - *knobs*: client knobs (``fdb.options.set_knob("name=value")``); they
          apply only before the first store in this process opens.
        - *bindings*: the ``fdb`` module to use instead of importing it (tests).
        """
        fdb = load_bindings(api_version, module=bindings)
        path = None if cluster_file is None else os.fspath(cluster_file)
        database = _connect(fdb, path, knobs or {}, check_path=bindings is None)
        store = cls(
            database,
            fdb,
            prefix=prefix,
            transaction_timeout=transaction_timeout,
            retry_limit=retry_limit,
            max_retry_delay=max_retry_delay,
        )
        await store._probe(path, probe_timeout)
        return store

    async def _probe(self, path: str | None, probe_timeout: float) -> None:
        """Fail unless the cluster hands out a read version within *probe_timeout*."""
        tr = self._db.create_transaction()
        try:
            tr.options.set_timeout(max(1, round(probe_timeout * 1000)))
            future = tr.get_read_version()
            await wait_ready(future)
            future.wait()
        except self._fdb.FDBError as exc:
            where = "the default cluster file" if path is None else f"cluster file {path!r}"
            if exc.code == codes.TRANSACTION_TIMED_OUT:
                raise StoreUnavailableError(
                    f"no FoundationDB cluster answered within {probe_timeout} s at {where} "
                    "(the client library loaded; is the cluster up and reachable?)"
                ) from exc
            raise StoreUnavailableError(
                f"the FoundationDB cluster at {where} cannot be used: "
                f"{map_error(exc.code, str(exc))}"
            ) from exc
        finally:
            tr.cancel()

    # -- the Store protocol ---------------------------------------------------

    def create_transaction(self) -> FoundationDBTransaction:
        """Begin a transaction with the store's timeout and retry options."""
        return FoundationDBTransaction(self, self._raw_transaction())

    async def transact(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``await fn(tr)`` and commit, retrying through FoundationDB's ``on_error``.

        ``fn`` gets a fresh :class:`FoundationDBTransaction` view on each
        attempt (the previous one is closed). On an error carrying a
        FoundationDB code (a failed read or commit, or a quickq
        :class:`~quickq.RetryableError` raised by *fn*), ``on_error`` backs off
        and resets the transaction, or re-raises, mapped, what is not retryable
        or exceeds the retry limit or the timeout. Any other exception
        (cancellation included) cancels the transaction and propagates.
        """
        tr = self._raw_transaction()
        state = RetryState()
        unknown: CommitUnknownResultError | None = None
        try:
            while True:
                view = FoundationDBTransaction(self, tr)
                state.rewind()
                view.retry_state = state
                try:
                    result = await fn(view)
                    await view.commit()
                    return result
                except BaseException as exc:
                    view._retire()
                    code = self._code_of(exc)
                    if code is None:
                        raise
                    if isinstance(exc, CommitUnknownResultError):
                        unknown = exc
                    try:
                        await self._on_error(tr, code, exc)
                    except StoreError as final:
                        # Out of retries or time after a commit that may have
                        # landed: the outcome is unknown, not "not done".
                        if unknown is not None and not isinstance(final, CommitUnknownResultError):
                            raise CommitUnknownResultError(
                                f"an earlier commit's result is unknown, then: {final}"
                            ) from final
                        raise
        except BaseException:
            tr.cancel()
            raise

    async def aclose(self) -> None:
        """Stop handing out transactions. The client's network thread stays (it is
        process-wide, and stops at interpreter exit)."""
        self._closed = True

    async def __aenter__(self) -> FoundationDBStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- SupportsWatch --------------------------------------------------------

    async def wait_for_change(self, key: bytes, seen: bytes | None) -> None:
        """Return once the value at *key* differs from *seen* (a FoundationDB watch).

        Reads *key*; if it still equals *seen*, commits a watch on it and waits
        for the watch. May return spuriously (a watch the cluster dropped);
        callers re-check and bound the wait with a cancel scope. The store's
        transaction timeout does not apply to the wait (it would fire the
        watch). Each waiting task holds one of the client's watches (10,000
        per process by default).
        """
        full = self._key(key)
        tr = self._raw_transaction(timeout=False)
        try:
            while True:
                try:
                    read = tr.get(full)
                    await wait_ready(read)
                    if read.value != seen:
                        tr.cancel()
                        return
                    watch = tr.watch(full)
                    commit = tr.commit()
                    await wait_ready(commit)
                    commit.wait()
                    break
                except self._fdb.FDBError as exc:
                    await self._on_error(tr, exc.code, None)
        except BaseException:
            tr.cancel()
            raise
        await wait_ready(watch)
        try:
            watch.wait()
        except self._fdb.FDBError as exc:
            if exc.code in (codes.TOO_MANY_WATCHES, codes.WATCHES_DISABLED):
                raise map_error(exc.code, str(exc)) from exc
            # Any other failure of the watch: a spurious wake-up; callers re-check.

    # -- internals ------------------------------------------------------------

    def _raw_transaction(self, *, timeout: bool = True) -> Any:
        if self._closed:
            raise StoreUnavailableError("the FoundationDB store is closed")
        with self._native():
            tr = self._db.create_transaction()
            if timeout and self._timeout_ms:
                tr.options.set_timeout(self._timeout_ms)
            if self._retry_limit >= 0:
                tr.options.set_retry_limit(self._retry_limit)
            tr.options.set_max_retry_delay(self._max_retry_delay_ms)
        return tr

    def _key(self, key: bytes) -> bytes:
        if not isinstance(key, bytes):
            raise TypeError(f"keys are bytes, not {type(key).__name__}")
        if len(key) > self.limits.key_bytes:
            raise KeyTooLargeError(
                f"key of {len(key)} bytes exceeds the limit of {self.limits.key_bytes} "
                f"(FoundationDB's limit less the {len(self.prefix)}-byte prefix)"
            )
        return self.prefix + key

    def _code_of(self, exc: BaseException) -> int | None:
        """The FoundationDB error code behind *exc*, for ``on_error``; else ``None``."""
        if isinstance(exc, self._fdb.FDBError):
            return int(exc.code)
        cause = exc.__cause__
        if isinstance(exc, StoreError) and isinstance(cause, self._fdb.FDBError):
            return int(cause.code)
        return retry_code(exc)

    async def _on_error(self, tr: Any, code: int, exc: BaseException | None) -> None:
        """Await ``tr.on_error(code)``: back off and reset, or raise the error mapped."""
        future = tr.on_error(code)
        await wait_ready(future)
        try:
            future.wait()
        except self._fdb.FDBError as err:
            if isinstance(exc, StoreError) and err.code == code:
                raise exc from exc.__cause__  # already mapped, with its own message
            raise map_error(err.code, str(err)) from err

    @contextmanager
    def _native(self) -> Iterator[None]:
        """Map ``FDBError`` raised synchronously by the bindings."""
        try:
            yield
        except self._fdb.FDBError as exc:
            raise map_error(exc.code, str(exc)) from exc


def _connect(fdb: Any, path: str | None, knobs: Mapping[str, object], *, check_path: bool) -> Any:
    """Set the client knobs and open the database handle (this does not reach the cluster)."""
    if check_path and path is not None and not os.path.exists(path):
        raise StoreUnavailableError(
            f"no FoundationDB cluster: the cluster file {path!r} does not exist"
        )
    for name, value in knobs.items():
        try:
            fdb.options.set_knob(f"{name}={value}")
        except fdb.FDBError as exc:
            raise StoreError(
                f"cannot set client knob {name}={value} (knobs apply only before the "
                f"first FoundationDB store opens in a process): {exc}"
            ) from exc
    try:
        return fdb.open(path)
    except fdb.FDBError as exc:
        where = "the default cluster file" if path is None else f"cluster file {path!r}"
        raise StoreUnavailableError(
            f"no FoundationDB cluster: cannot open {where} "
            "(pass cluster_file= or set FDB_CLUSTER_FILE): "
            f"{map_error(exc.code, str(exc))}"
        ) from exc


class FoundationDBTransaction:
    """One FoundationDB transaction behind the :class:`~quickq.stores.Transaction` protocol.

    Unusable after :meth:`commit`, :meth:`cancel` or a failed operation (the
    store's :meth:`~FoundationDBStore.transact` then hands the body a fresh
    view on the reset transaction). Key and value sizes are checked when
    written, so an oversize write fails at its call site. The transaction's
    size is counted as the memory store counts it (``quickq.stores._limits``:
    FoundationDB's rules, one mutation per key), so the write that takes it
    over the limit fails at its call site too; the client's own check at
    commit stays the authority.
    """

    __slots__ = ("_closed", "_fdb", "_prefix", "_size", "_store", "_tr", "_written", "retry_state")

    def __init__(self, store: FoundationDBStore, tr: Any) -> None:
        self._store = store
        self._fdb = store._fdb
        self._prefix = store.prefix
        self._tr = tr
        self._closed = False
        self._size = 0
        self._written: dict[bytes, int] = {}  # key -> bytes of its mutation (one per key)
        # The transact call's RetryState (None for a transaction made by hand).
        self.retry_state: RetryState | None = None

    # -- reads ----------------------------------------------------------------

    async def get(self, key: bytes, *, snapshot: bool = False) -> bytes | None:
        self._check_open()
        full = self._store._key(key)
        future = (self._tr.snapshot if snapshot else self._tr).get(full)
        await wait_ready(future)
        try:
            value = future.value
        except self._fdb.FDBError as exc:
            raise self._failed(exc) from exc
        if not snapshot:
            self._size += key_range_bytes(len(full))
        return None if value is None else bytes(value)

    async def get_many(
        self, keys: Sequence[bytes], *, snapshot: bool = False
    ) -> list[bytes | None]:
        """The values of *keys*: every future issued first, then awaited, so
        the reads travel together (one round trip, not one per key)."""
        self._check_open()
        reader = self._tr.snapshot if snapshot else self._tr
        fulls = [self._store._key(key) for key in keys]
        futures = [reader.get(full) for full in fulls]
        out: list[bytes | None] = []
        for future in futures:
            await wait_ready(future)
            try:
                value = future.value
            except self._fdb.FDBError as exc:
                raise self._failed(exc) from exc
            out.append(None if value is None else bytes(value))
        if not snapshot:
            self._size += sum(key_range_bytes(len(full)) for full in fulls)
        return out

    async def get_range(
        self,
        begin: bytes,
        end: bytes,
        *,
        limit: int = 0,
        reverse: bool = False,
        snapshot: bool = False,
    ) -> list[KeyValue]:
        """The pairs with ``begin <= key < end``, paged one future at a time.

        Each page is one ``_get_range`` future of the bindings (what their
        blocking iterator uses) in ``want_all`` mode, or ``exact`` mode under a
        limit; the next page starts after the last key seen (before it, when
        reversed) and asks only for the rows still wanted.
        """
        self._check_open()
        if limit < 0:
            raise ValueError("limit must be >= 0")
        lo, hi = self._store._key(begin), self._store._key(end)
        if begin >= end:
            return []
        fdb = self._fdb
        reader = self._tr.snapshot if snapshot else self._tr
        selector = fdb.KeySelector
        first, last = selector.first_greater_or_equal(lo), selector.first_greater_or_equal(hi)
        mode = fdb.StreamingMode.exact if limit else fdb.StreamingMode.want_all
        strip = len(self._prefix)
        out: list[KeyValue] = []
        iteration = 1
        wanted = limit
        while True:
            future = reader._get_range(first, last, wanted, mode, iteration, reverse)
            await wait_ready(future)
            try:
                kvs, count, more = future.wait()
            except fdb.FDBError as exc:
                raise self._failed(exc) from exc
            out.extend((bytes(kv.key)[strip:], bytes(kv.value)) for kv in kvs)
            if not count or not more:
                return self._observed(out, lo, hi, snapshot, stopped=False, reverse=reverse)
            if limit:
                wanted -= count
                if wanted <= 0:
                    return self._observed(out, lo, hi, snapshot, stopped=True, reverse=reverse)
            iteration += 1
            last_key = kvs[-1].key
            if reverse:
                last = selector.first_greater_or_equal(last_key)
            else:
                first = selector.first_greater_than(last_key)

    # -- writes ---------------------------------------------------------------

    def set(self, key: bytes, value: bytes) -> None:
        self._check_open()
        full = self._store._key(key)
        if not isinstance(value, bytes):
            raise TypeError(f"values are bytes, not {type(value).__name__}")
        limit = self._store.limits.value_bytes
        if len(value) > limit:
            raise ValueTooLargeError(f"value of {len(value)} bytes exceeds the limit of {limit}")
        self._grow(full, set_bytes(len(full), len(value)))
        self._tr.set(full, value)

    def clear(self, key: bytes) -> None:
        self._check_open()
        full = self._store._key(key)
        self._grow(full, clear_bytes(len(full)))
        self._tr.clear(full)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        self._check_open()
        lo, hi = self._store._key(begin), self._store._key(end)
        if begin >= end:
            return
        self._size += clear_range_bytes(len(lo), len(hi))
        self._check_size()
        self._tr.clear_range(lo, hi)

    def add(self, key: bytes, delta: int) -> None:
        """FoundationDB's atomic ``ADD`` of *delta* as a little-endian 8-byte operand.

        The sum wraps at 64 bits, like the counter's signed reading.
        """
        self._check_open()
        full = self._store._key(key)
        self._grow(full, add_bytes(len(full)))
        self._tr.add(full, _UINT64.pack(delta % 2**64))

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        self._check_open()
        lo, hi = self._store._key(begin), self._store._key(end)
        if begin < end:
            self._size += range_bytes(len(lo), len(hi))
            self._tr.add_read_conflict_range(lo, hi)

    def add_read_conflict_key(self, key: bytes) -> None:
        self._check_open()
        full = self._store._key(key)
        self._size += key_range_bytes(len(full))
        self._tr.add_read_conflict_key(full)

    # -- ending ---------------------------------------------------------------

    async def commit(self) -> None:
        self._check_open()
        self._closed = True
        future = self._tr.commit()
        await wait_ready(future)
        try:
            future.wait()
        except self._fdb.FDBError as exc:
            if exc.code == codes.TRANSACTION_TIMED_OUT:
                # The commit was sent: it may still land (developer-guide.rst).
                raise CommitUnknownResultError(
                    "the transaction timed out after its commit was sent; it may still commit "
                    f"({map_error(exc.code, str(exc))})"
                ) from exc
            raise map_error(exc.code, str(exc)) from exc

    def cancel(self) -> None:
        if not self._closed:
            self._closed = True
            self._tr.cancel()

    # -- internals ------------------------------------------------------------

    def _retire(self) -> None:
        """Close this view without touching the transaction (transact reuses it)."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise TransactionClosedError("transaction used after commit, cancel or failure")

    def _failed(self, exc: Any) -> StoreError:
        self._closed = True
        return map_error(exc.code, str(exc))

    def _observed(
        self,
        out: list[KeyValue],
        lo: bytes,
        hi: bytes,
        snapshot: bool,
        *,
        stopped: bool,
        reverse: bool,
    ) -> list[KeyValue]:
        """Charge a range read's conflict range (up to the last row when the
        limit stopped it early, as FoundationDB's); return *out*."""
        if not snapshot:
            if stopped and out:
                last = len(self._prefix) + len(out[-1][0])
                begin, end = (last, len(hi)) if reverse else (len(lo), last + 1)
                self._size += range_bytes(begin, end)
            else:
                self._size += range_bytes(len(lo), len(hi))
        return out

    def _grow(self, full: bytes, nbytes: int) -> None:
        """Charge a write of *nbytes* (``_limits``) to *full*; FoundationDB keeps
        one mutation per key, so a rewrite replaces the key's earlier one."""
        mutation = nbytes - key_range_bytes(len(full))
        earlier = self._written.get(full)
        self._written[full] = mutation
        self._size += nbytes if earlier is None else mutation - earlier
        self._check_size()

    def _check_size(self) -> None:
        limit = self._store.limits.transaction_bytes
        if self._size > limit:
            raise TransactionTooLargeError(
                f"transaction of {self._size} bytes exceeds the limit of {limit} "
                "(counted as FoundationDB does: mutations, read and write conflict "
                "ranges, and their overhead)"
            )
