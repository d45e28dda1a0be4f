"""A STAND-IN for FoundationDB's Python bindings, for tests. Not FoundationDB.

No FoundationDB server or client library can be installed where quickq is built,
so the FoundationDB store's own control flow (its retry loop, error mapping,
range paging, future bridging, cancellation) is tested against this in-process
object with the surface of the ``fdb`` module that ``quickq.stores.fdb`` uses:

- module level: ``api_version``, ``open``, ``options.set_knob``, ``FDBError``,
  ``KeySelector``, ``StreamingMode``;
- ``Database.create_transaction``;
- ``Transaction``: ``get``, ``_get_range`` (the page future behind the bindings'
  range iterator), ``snapshot``, ``set``, ``clear``, ``clear_range``, ``add``,
  ``add_read_conflict_range``/``_key``, ``watch``, ``get_read_version``,
  ``commit``, ``on_error``, ``cancel``, ``options`` (timeout, retry limit, max
  retry delay);
- futures with ``on_ready``, ``is_ready``, ``block_until_ready``, ``wait``,
  ``cancel`` (and ``value`` for values).

The data lives in a :class:`~quickq.stores.MemoryStore` (the reference store),
so conflicts, snapshot reads and read-your-writes behave as specified. Like the
real client, every operation runs on a separate "network" thread (here an
asyncio loop in a daemon thread), which resolves futures and calls their
``on_ready`` callbacks there. Tests steer it: inject error codes per operation,
slow or hold futures, deliver cancellation callbacks late, page range reads in
small pages, and inspect what the store did (options set, ``on_error`` calls,
cancelled futures, exceptions raised by callbacks, thread of each callback).
It also records, as an unexpected error, any use of a transaction while its
``on_error`` future is pending (the real client resets the transaction when
that future is ready, wiping what was done meanwhile).

Where it differs from FoundationDB (by design): versions and conflict checks
are the memory store's; only the key selectors the store uses are supported;
backoff in ``on_error`` is scaled down to keep tests fast.
"""

from __future__ import annotations

import asyncio
import contextvars
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future as ConcurrentFuture
from typing import Any, ClassVar, TypeVar

from quickq import (
    CommitUnknownResultError,
    ConflictError,
    KeyTooLargeError,
    TransactionClosedError,
    TransactionTooLargeError,
    TransactionTooOldError,
    ValueTooLargeError,
)
from quickq.stores import MemoryStore
from quickq.stores.memory import MemoryTransaction

F = TypeVar("F", bound="Future")
LATEST_API_VERSION = 730
# fdb_error_predicate(RETRYABLE) of the 7.3 client (bindings/c/fdb_c.cpp).
RETRYABLE = frozenset(
    {1007, 1009, 1020, 1021, 1037, 1038, 1039, 1042, 1051, 1078, 1213, 1223, 1235}
)
_NAMES = {
    1007: "transaction_too_old",
    1020: "not_committed",
    1021: "commit_unknown_result",
    1025: "transaction_cancelled",
    1031: "transaction_timed_out",
    1101: "operation_cancelled",
    1515: "no_cluster_file_found",
    2000: "client_invalid_operation",
    2101: "transaction_too_large",
    2102: "key_too_large",
    2103: "value_too_large",
}


class FDBError(Exception):
    """The stand-in's ``fdb.FDBError``: a numeric ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        return f"{_NAMES.get(self.code, 'stand-in error')} ({self.code})"


def _code_for(exc: BaseException) -> int:
    for cls, code in (
        (ConflictError, 1020),
        (CommitUnknownResultError, 1021),
        (TransactionTooOldError, 1007),
        (KeyTooLargeError, 2102),
        (ValueTooLargeError, 2103),
        (TransactionTooLargeError, 2101),
        (TransactionClosedError, 2000),
    ):
        if isinstance(exc, cls):
            return code
    raise exc


class KeySelector:
    def __init__(self, key: bytes, or_equal: bool, offset: int) -> None:
        self.key, self.or_equal, self.offset = key, or_equal, offset

    @classmethod
    def first_greater_or_equal(cls, key: bytes) -> KeySelector:
        return cls(key, False, 1)

    @classmethod
    def first_greater_than(cls, key: bytes) -> KeySelector:
        return cls(key, True, 1)

    def resolve(self) -> bytes:
        if self.offset != 1:
            raise NotImplementedError("the stand-in resolves first_greater_* selectors only")
        return self.key + b"\x00" if self.or_equal else self.key


class StreamingMode:
    want_all = -2
    iterator = -1
    exact = 0


class KeyValue:
    def __init__(self, key: bytes, value: bytes) -> None:
        self.key, self.value = key, value

    def __iter__(self) -> Iterator[bytes]:
        return iter((self.key, self.value))


class Future:
    """A stand-in future, resolved on the network thread."""

    def __init__(self, network: Network, op: str) -> None:
        self._network = network
        self.op = op
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: Any = None
        self._error: FDBError | None = None
        self._callbacks: list[Callable[[Any], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.cancel_requested = False

    def is_ready(self) -> bool:
        return self._done.is_set()

    def on_ready(self, callback: Callable[[Any], None]) -> None:
        """Call *callback(self)* once ready: at once (in this thread) if it already is."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        self._network.run_callback(callback, self)

    def block_until_ready(self) -> None:
        self._network.blocking_waits += 1
        self._done.wait()

    def wait(self) -> Any:
        if not self.is_ready():
            self.block_until_ready()
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> None:
        """Fail the future with operation_cancelled (1101) unless it is ready."""
        if self.is_ready() or self.cancel_requested:
            return
        self.cancel_requested = True
        self._network.cancelled.append(self.op)
        self._network.call(self._cancel_on_network)

    def _cancel_on_network(self) -> None:
        if self._task is not None:
            self._task.cancel()
        late = self._network.late_cancel_callbacks
        self.resolve(error=FDBError(1101), deliver=not late)

    def resolve(
        self, result: Any = None, error: FDBError | None = None, deliver: bool = True
    ) -> None:
        """Make the future ready and run its callbacks (on the network thread)."""
        with self._lock:
            if self._done.is_set():
                return
            self._result, self._error = result, error
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            if deliver:
                self._network.run_callback(callback, self)
            else:
                self._network.held_callbacks.append((callback, self))


class ValueFuture(Future):
    """``tr.get``'s future: ``value`` is the bytes or ``None`` (or raises)."""

    @property
    def value(self) -> bytes | None:
        result: bytes | None = self.wait()
        return result


class Network:
    """The stand-in's network thread: an asyncio loop that runs every operation."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="fdb-standin-network", daemon=True)
        self.late_cancel_callbacks = False
        self.held_callbacks: list[tuple[Callable[[Any], None], Future]] = []
        self.callback_errors: list[BaseException] = []
        self.callback_threads: set[int] = set()
        self.cancelled: list[str] = []
        self.blocking_waits = 0
        self.unexpected_errors: list[BaseException] = []
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, fn: Callable[[], None]) -> None:
        # A fresh context: the caller's context variables (sniffio's, under trio's
        # guest mode) must not leak into the network thread.
        self.loop.call_soon_threadsafe(fn, context=contextvars.Context())

    def run_callback(self, callback: Callable[[Any], None], future: Future) -> None:
        # The real bindings print and discard a callback's exception; record it.
        self.callback_threads.add(threading.get_ident())
        try:
            callback(future)
        except BaseException as exc:
            self.callback_errors.append(exc)

    def spawn(self, future: Future, body: Callable[[], Awaitable[Any]]) -> None:
        def start() -> None:
            if not future.is_ready():
                future._task = self.loop.create_task(self._settle(future, body))

        self.call(start)

    async def _settle(self, future: Future, body: Callable[[], Awaitable[Any]]) -> None:
        try:
            result = await body()
        except FDBError as exc:
            future.resolve(error=exc)
        except asyncio.CancelledError:
            future.resolve(error=FDBError(1101), deliver=not self.late_cancel_callbacks)
        except Exception as exc:
            try:
                code = _code_for(exc)
            except Exception as unexpected:
                self.unexpected_errors.append(unexpected)
                code = 4000  # unknown_error
            future.resolve(error=FDBError(code))
        else:
            future.resolve(result)

    def run_sync(self, fn: Callable[[], Any]) -> Any:
        """Run *fn* on the network thread and return its result (blocking this thread)."""
        done: ConcurrentFuture[Any] = ConcurrentFuture()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as exc:
                done.set_exception(exc)

        self.call(run)
        return done.result(timeout=10)

    def release_held_callbacks(self) -> None:
        """Deliver the callbacks held back by ``late_cancel_callbacks``, on the network thread."""

        def release() -> None:
            held, self.held_callbacks = self.held_callbacks, []
            for callback, future in held:
                self.run_callback(callback, future)

        self.run_sync(release)

    def stop(self) -> None:
        """Cancel what still runs on the network thread, stop it, close its loop."""

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class _Options:
    def __init__(self, log: list[tuple[str, object]], target: Any = None) -> None:
        self._log = log
        self._target = target

    def set_timeout(self, ms: int) -> None:
        self._log.append(("timeout", ms))
        self._target.timeout_ms = ms
        self._target.deadline = time.monotonic() + ms / 1000 if ms else None

    def set_retry_limit(self, n: int) -> None:
        self._log.append(("retry_limit", n))
        self._target.retry_limit = n

    def set_max_retry_delay(self, ms: int) -> None:
        self._log.append(("max_retry_delay", ms))
        self._target.max_retry_delay_ms = ms

    def set_knob(self, knob: str) -> None:
        self._log.append(("knob", knob))


class _Reader:
    """``tr`` or ``tr.snapshot``: the reads."""

    def __init__(self, tr: StandinTransaction, snapshot: bool) -> None:
        self._tr = tr
        self._snapshot = snapshot

    def get(self, key: bytes) -> ValueFuture:
        tr, snapshot = self._tr, self._snapshot

        async def body() -> bytes | None:
            return await tr.memory.get(key, snapshot=snapshot)

        return tr.run("get", ValueFuture(tr.fdb.network, "get"), body)

    def _get_range(
        self,
        begin: KeySelector,
        end: KeySelector,
        limit: int,
        mode: int,
        iteration: int,
        reverse: bool,
    ) -> Future:
        tr, snapshot, fdb = self._tr, self._snapshot, self._tr.fdb
        fdb.range_calls.append(
            {"limit": limit, "mode": mode, "iteration": iteration, "reverse": reverse,
             "snapshot": snapshot}
        )  # fmt: skip
        if mode == StreamingMode.exact and not limit:
            return tr.run("get_range", Future(fdb.network, "get_range"), _raise(2210))

        async def body() -> tuple[list[KeyValue], int, bool]:
            lo, hi = begin.resolve(), end.resolve()
            want = min(limit, fdb.page_size) if limit else fdb.page_size
            rows = await tr.memory.get_range(lo, hi, limit=want, reverse=reverse, snapshot=snapshot)
            more = False
            if len(rows) == want:  # anything beyond? (a snapshot peek: no conflict)
                last = rows[-1][0]
                rest = (lo, last) if reverse else (last + b"\x00", hi)
                more = bool(
                    rest[0] < rest[1]
                    and await tr.memory.get_range(*rest, limit=1, reverse=reverse, snapshot=True)
                )
                if not more and not snapshot and want != limit:
                    # The range ended within this page: like FoundationDB, the
                    # read conflicts on all of it, not only up to the last row.
                    tr.memory.add_read_conflict_range(*rest)
            return [KeyValue(k, v) for k, v in rows], len(rows), more

        return tr.run("get_range", Future(fdb.network, "get_range"), body)

    def get_read_version(self) -> Future:
        tr = self._tr

        async def body() -> int:
            if tr.fdb.unreachable:
                await asyncio.sleep(3600)
            return tr.memory._read_version

        return tr.run("get_read_version", Future(tr.fdb.network, "get_read_version"), body)


def _raise(code: int) -> Callable[[], Awaitable[Any]]:
    async def body() -> Any:
        raise FDBError(code)

    return body


class StandinTransaction(_Reader):
    """The stand-in's ``fdb.Transaction``, on a :class:`MemoryTransaction`."""

    def __init__(self, fdb: StandinFDB) -> None:
        super().__init__(self, snapshot=False)
        self.fdb = fdb
        self.snapshot = _Reader(self, snapshot=True)
        self.options = _Options(fdb.options_log, self)
        self.timeout_ms = 0
        self.deadline: float | None = None
        self.retry_limit = -1
        self.max_retry_delay_ms = 1000
        self.retries = 0
        self.memory: MemoryTransaction = fdb.store.create_transaction()
        self.state = "open"  # open | committing | committed | failed | cancelled
        self.pending_error: FDBError | None = None
        self.watches: list[tuple[bytes, Future]] = []
        self.live: set[Future] = set()
        self.resetting: Future | None = None
        """The pending ``on_error`` future: the client resets the transaction
        when it is ready, wiping whatever was done to it meanwhile."""
        fdb.transactions.append(self)

    def _check_not_resetting(self, op: str) -> None:
        # A caller that does not wait for on_error skips its backoff, and on
        # the real client its next attempt is wiped by the late reset.
        if self.resetting is not None and not self.resetting.is_ready():
            self.fdb.network.unexpected_errors.append(
                AssertionError(f"{op} issued while on_error was still backing off")
            )

    # -- running operations on the network thread -----------------------------

    def run(
        self,
        op: str,
        future: F,
        body: Callable[[], Awaitable[Any]],
        *,
        any_state: bool = False,
    ) -> F:
        """Run *body* for *future* on the network thread, with faults and the timeout."""
        fdb = self.fdb
        state = self.state
        if op != "on_error":
            self._check_not_resetting(op)

        async def guarded() -> Any:
            if state == "cancelled":
                raise FDBError(1025)
            if state != "open" and not any_state:
                raise FDBError(2000)  # used after commit, without on_error
            code, delay, hold = fdb.take_fault(op)
            remaining = None if self.deadline is None else self.deadline - time.monotonic()
            try:
                async with asyncio.timeout(remaining):
                    if hold:
                        await asyncio.sleep(3600)
                    if delay:
                        await asyncio.sleep(delay)
                    if code is not None:
                        raise FDBError(code)
                    return await body()
            except TimeoutError:
                raise FDBError(1031) from None

        self.live.add(future)
        fdb.network.spawn(future, guarded)
        return future

    # -- writes (synchronous, like the bindings; errors surface at commit) ----

    def _mutate(self, fn: Callable[[MemoryTransaction], None]) -> None:
        if self.state == "cancelled":
            return
        self._check_not_resetting("a write")
        memory = self.memory

        def apply() -> None:
            try:
                fn(memory)
            except Exception as exc:
                if self.memory is memory and self.pending_error is None:
                    self.pending_error = FDBError(_code_for(exc))

        self.fdb.network.call(apply)

    def set(self, key: bytes, value: bytes) -> None:
        self._mutate(lambda m: m.set(key, value))

    def clear(self, key: bytes) -> None:
        self._mutate(lambda m: m.clear(key))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        self._mutate(lambda m: m.clear_range(begin, end))

    def add(self, key: bytes, param: bytes) -> None:
        if len(param) != 8:
            raise ValueError("the stand-in's add takes an 8-byte little-endian operand")
        (delta,) = struct.unpack("<q", param)
        self.fdb.add_params.append(param)
        self._mutate(lambda m: m.add(key, delta))

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        self._mutate(lambda m: m.add_read_conflict_range(begin, end))

    def add_read_conflict_key(self, key: bytes) -> None:
        self._mutate(lambda m: m.add_read_conflict_key(key))

    def watch(self, key: bytes) -> Future:
        self._check_not_resetting("watch")
        future = Future(self.fdb.network, "watch")
        self.watches.append((key, future))
        return future

    # -- ending ---------------------------------------------------------------

    def commit(self) -> Future:
        future = Future(self.fdb.network, "commit")
        if self.state != "open":
            return self.run("commit", future, _raise(2000))

        async def body() -> None:
            try:
                if self.pending_error is not None:
                    raise self.pending_error
                await self.memory.commit()
            except BaseException:
                self.state = "failed"
                raise
            self.state = "committed"
            self.fdb.commits += 1
            self._arm_watches()

        future = self.run("commit", future, body)
        self.state = "committing"
        return future

    def _arm_watches(self) -> None:
        store = self.fdb.store
        for key, future in self.watches:
            code, _, _ = self.fdb.take_fault("watch")
            if code is not None:
                future.resolve(error=FDBError(code))
                continue
            seen = store.raw_get(key)

            async def wait(
                key: bytes = key, seen: bytes | None = seen, deadline: float | None = self.deadline
            ) -> None:
                # A watch is a future of its transaction: the timeout applies.
                remaining = None if deadline is None else deadline - time.monotonic()
                try:
                    async with asyncio.timeout(remaining):
                        await store.wait_for_change(key, seen)
                except TimeoutError:
                    raise FDBError(1031) from None

            self.fdb.network.spawn(future, wait)
        self.watches = []

    def on_error(self, code: int | FDBError) -> Future:
        if isinstance(code, FDBError):
            code = code.code
        self.fdb.on_error_calls.append(code)
        future = Future(self.fdb.network, "on_error")

        async def body() -> None:
            if code not in RETRYABLE or (0 <= self.retry_limit <= self.retries):
                raise FDBError(code)
            delay = min(0.0001 * 2**self.retries, self.max_retry_delay_ms / 1000)
            self.retries += 1
            await asyncio.sleep(delay)
            self._reset()

        self.resetting = future
        return self.run("on_error", future, body, any_state=True)

    def _reset(self) -> None:
        self.memory.cancel()
        self.memory = self.fdb.store.create_transaction()
        self.pending_error = None
        for _, future in self.watches:
            future.resolve(error=FDBError(1101))
        self.watches = []
        self.state = "open"

    def cancel(self) -> None:
        self.fdb.cancelled_transactions += 1
        self.state = "cancelled"

        def cancel() -> None:
            self.memory.cancel()
            for future in list(self.live):
                if future._task is not None and not future.is_ready():
                    future._task.cancel()
            for _, future in self.watches:
                future.resolve(error=FDBError(1025))

        self.fdb.network.call(cancel)


class StandinDatabase:
    def __init__(self, fdb: StandinFDB) -> None:
        self._fdb = fdb

    def create_transaction(self) -> StandinTransaction:
        return StandinTransaction(self._fdb)


class StandinFDB:
    """A module-like stand-in for ``fdb``; pass it as ``FoundationDBStore.open(bindings=...)``.

    Steering (set before or during a test):

    - ``inject(op, code, times=1)``: the next *times* operations *op* (``get``,
      ``get_range``, ``commit``, ``on_error``, ``get_read_version``, ``watch``)
      fail with FDBError *code* (after *delay* seconds);
    - ``slow(op, seconds, times=1)``: delay them; ``hold(op, times=1)``: never
      complete them (until cancelled);
    - ``late_cancel_callbacks``: a cancelled future's callbacks are held back
      until ``network.release_held_callbacks()``;
    - ``page_size``: rows per range-read page;
    - ``missing_library`` / ``unsupported_api`` / ``no_cluster_file`` /
      ``unreachable``: failures at open.
    """

    FDBError: ClassVar = FDBError
    KeySelector: ClassVar = KeySelector
    StreamingMode: ClassVar = StreamingMode

    def __init__(self, store: MemoryStore | None = None, *, page_size: int = 1000) -> None:
        self.store = store if store is not None else MemoryStore(clock=time.monotonic)
        self.page_size = page_size
        self.network = Network()
        self.options_log: list[tuple[str, object]] = []
        self.options = _Options(self.options_log)
        self.selected_api_version: int | None = None
        self.missing_library = False
        self.unsupported_api = False
        self.no_cluster_file = False
        self.unreachable = False
        self.faults: dict[str, deque[tuple[int | None, float, bool]]] = defaultdict(deque)
        self.on_error_calls: list[int] = []
        self.range_calls: list[dict[str, Any]] = []
        self.add_params: list[bytes] = []
        self.transactions: list[StandinTransaction] = []
        self.cancelled_transactions = 0
        self.commits = 0

    # -- the fdb module's surface ---------------------------------------------

    def api_version(self, version: int) -> None:
        if self.missing_library:
            raise Exception("Unable to locate the FoundationDB API shared library!")
        if self.unsupported_api or version > LATEST_API_VERSION:
            raise RuntimeError(
                f"API version {version} is not supported by the installed FoundationDB C library."
            )
        self.selected_api_version = version

    def open(self, cluster_file: str | None = None) -> StandinDatabase:
        if self.no_cluster_file:
            raise FDBError(1515)
        return StandinDatabase(self)

    # -- steering ---------------------------------------------------------------

    def inject(self, op: str, code: int, times: int = 1, *, delay: float = 0.0) -> None:
        self.faults[op].extend([(code, delay, False)] * times)

    def slow(self, op: str, seconds: float, times: int = 1) -> None:
        self.faults[op].extend([(None, seconds, False)] * times)

    def hold(self, op: str, times: int = 1) -> None:
        self.faults[op].extend([(None, 0.0, True)] * times)

    def take_fault(self, op: str) -> tuple[int | None, float, bool]:
        queue = self.faults.get(op)
        return queue.popleft() if queue else (None, 0.0, False)

    # -- backdoor (runs on the network thread, where the store's watchers live) --

    def backdoor_get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.network.run_sync(lambda: self.store.raw_get(key))
        return value

    def backdoor_set(self, key: bytes, value: bytes | None) -> None:
        self.network.run_sync(lambda: self.store.raw_set(key, value))

    def close(self) -> None:
        self.network.stop()
