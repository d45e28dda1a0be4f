"""The stand-in's database and transactions, and :class:`StandinFDB`, the
module-like object passed to ``FoundationDBStore.open(bindings=...)``; the data
lives in a memory store."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from quickq.stores import MemoryStore
from quickq.stores.memory import MemoryTransaction

from ._network import (
    LATEST_API_VERSION,
    RETRYABLE,
    F,
    FDBError,
    Future,
    KeySelector,
    KeyValue,
    Network,
    StreamingMode,
    ValueFuture,
    code_for,
)


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
                    self.pending_error = FDBError(code_for(exc))

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

    def compare_and_clear(self, key: bytes, param: bytes) -> None:
        self._mutate(lambda m: m.compare_and_clear(key, param))

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
