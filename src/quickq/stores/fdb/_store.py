"""FoundationDBStore: opening a cluster, the async retry loop, watches, and
loading the bindings (see the package docstring for the whole picture)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Final, TypeVar

import attrs

from ..._exceptions import CommitUnknownResultError, StoreError, StoreUnavailableError
from .._limits import check_key
from .._protocol import Limits, RetryState, Transaction
from . import _errors as codes
from ._errors import map_error, retry_code
from ._futures import wait_ready
from ._transaction import FoundationDBTransaction

__all__ = ["DEFAULT_API_VERSION", "FoundationDBStore", "load_bindings"]

T = TypeVar("T")

DEFAULT_API_VERSION: Final = 730
"""FoundationDB 7.3's API version; the ``foundationdb`` bindings are pinned to 7.3."""


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
        self._key_note = f" (FoundationDB's limit less the {len(prefix)}-byte prefix)"
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
        check_key(key, self.limits, note=self._key_note)
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
