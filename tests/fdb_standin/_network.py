"""The stand-in's network thread and futures, its ``FDBError``, and the small
value types of the ``fdb`` module's surface (key selectors, streaming modes,
key-value pairs).

Like the real client, every operation runs on a separate "network" thread
(here an asyncio loop in a daemon thread), which resolves futures and calls
their ``on_ready`` callbacks there.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future as ConcurrentFuture
from typing import Any, TypeVar

from quickq import (
    CommitUnknownResultError,
    ConflictError,
    KeyTooLargeError,
    TransactionClosedError,
    TransactionTooLargeError,
    TransactionTooOldError,
    ValueTooLargeError,
)

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


def code_for(exc: BaseException) -> int:
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
                code = code_for(exc)
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
