"""The FoundationDB store's own control flow, on a stand-in for the ``fdb`` bindings.

No FoundationDB cluster or client library exists where these run, so the store
talks to the ``tests.fdb_standin`` package: the bindings' surface, backed by the memory
store, resolving futures and calling their callbacks on a separate network
thread like the real client. These tests check what the store itself does with
that surface: the retry loop over ``on_error``, error mapping, range paging,
bridging futures to trio and asyncio, cancellation, late callbacks, watches.
They say nothing about FoundationDB itself: ``tests/test_store_fdb.py`` runs the
conformance suite against a real cluster when one is reachable. Range paging,
prefixes, future bridging and watches continue in ``test_store_fdb_standin_io.py``.

asyncio runs in debug mode here, so a call into the loop from the network
thread that is not thread-safe raises instead of passing by luck.
"""

from __future__ import annotations

import ctypes.util
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
import sniffio

from quickq import (
    CommitUnknownResultError,
    ConflictError,
    KeyTooLargeError,
    RetryableError,
    StoreError,
    StoreUnavailableError,
    TransactionClosedError,
    TransactionTimedOutError,
    TransactionTooLargeError,
    TransactionTooOldError,
    ValueTooLargeError,
)
from quickq.stores import CommitFault, Limits, Transaction
from quickq.stores.fdb import DEFAULT_API_VERSION, FoundationDBStore
from quickq.testing import StoreTests

from ._stores import fdb_test_prefix
from .fdb_standin import Body, FDBError, StandinFDB, check_clean, noop, open_store


@pytest.fixture(
    params=[
        pytest.param(("trio", {}), id="trio"),
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
def standin() -> Iterator[StandinFDB]:
    fdb = StandinFDB(page_size=3)
    yield fdb
    fdb.close()
    check_clean(fdb)


# -- the conformance suite, on the stand-in --------------------------------------


class TestFoundationDBStoreOnStandin(StoreTests[FoundationDBStore]):
    """Every store promise, through FoundationDBStore and the stand-in's bindings surface."""

    supports_fault_injection = True  # through the memory store behind the stand-in
    supports_mock_clock = False  # transaction age is the stand-in's monotonic clock
    limits = Limits(key_bytes=10_000 - len(b"tenant/"))  # the prefix counts

    @pytest.fixture
    async def store(self) -> AsyncIterator[FoundationDBStore]:
        fdb = StandinFDB(page_size=2)  # tiny pages: every range read is paged
        store = await FoundationDBStore.open(bindings=fdb, prefix=b"tenant/")
        self._fdb = fdb
        yield store
        await store.aclose()
        fdb.close()
        check_clean(fdb)

    def backdoor_get(self, store: FoundationDBStore, key: bytes) -> bytes | None:
        return self._fdb.backdoor_get(b"tenant/" + key)

    def backdoor_set(self, store: FoundationDBStore, key: bytes, value: bytes | None) -> None:
        self._fdb.backdoor_set(b"tenant/" + key, value)

    def inject_commit_fault(self, store: FoundationDBStore, fault: CommitFault) -> None:
        self._fdb.store.inject(fault)

    async def test_state_machine(self, store: FoundationDBStore) -> None:
        if sniffio.current_async_library() != "trio":
            # ~20 s per run through the stand-in's thread hops; the bridge on
            # asyncio is covered by every other test here.
            pytest.skip("the state machine runs on the stand-in under trio only")
        await super().test_state_machine(store)


# -- opening --------------------------------------------------------------------

pytestmark = pytest.mark.anyio


async def test_open_selects_the_api_version_and_sets_transaction_options(
    standin: StandinFDB,
) -> None:
    store = await FoundationDBStore.open(
        bindings=standin, transaction_timeout=2.5, retry_limit=7, max_retry_delay=0.25
    )
    assert standin.selected_api_version == DEFAULT_API_VERSION == 730
    standin.options_log.clear()
    await store.transact(noop)
    assert standin.options_log == [("timeout", 2500), ("retry_limit", 7), ("max_retry_delay", 250)]


async def test_open_without_client_library_says_so(standin: StandinFDB) -> None:
    standin.missing_library = True
    with pytest.raises(StoreUnavailableError, match=r"client library \(libfdb_c\)"):
        await FoundationDBStore.open(bindings=standin)


async def test_open_with_too_old_client_library_names_the_api_version(
    standin: StandinFDB,
) -> None:
    standin.unsupported_api = True
    with pytest.raises(StoreUnavailableError, match="API version 730"):
        await FoundationDBStore.open(bindings=standin)


async def test_open_without_cluster_file_says_so(standin: StandinFDB) -> None:
    standin.no_cluster_file = True
    with pytest.raises(StoreUnavailableError, match=r"no FoundationDB cluster.*cluster file"):
        await FoundationDBStore.open(bindings=standin)


async def test_open_with_unreachable_cluster_says_so(standin: StandinFDB) -> None:
    standin.unreachable = True
    with anyio.fail_after(5), pytest.raises(StoreUnavailableError, match=r"answered within 0\.1 s"):
        await FoundationDBStore.open(bindings=standin, probe_timeout=0.1)


async def test_open_with_the_real_bindings_reports_what_is_missing() -> None:
    # The real ``fdb`` package is installed; whether the native client is
    # depends on the machine. Either way the error names what is missing.
    expected = "client library" if ctypes.util.find_library("fdb_c") is None else "cluster file"
    with pytest.raises(StoreUnavailableError, match=expected):
        await FoundationDBStore.open("/nonexistent/quickq-test.cluster")


async def test_knobs_are_set_before_the_database_opens(standin: StandinFDB) -> None:
    await FoundationDBStore.open(bindings=standin, knobs={"min_trace_severity": 10})
    assert ("knob", "min_trace_severity=10") in standin.options_log


def test_prefix_must_not_reach_system_keys(standin: StandinFDB) -> None:
    with pytest.raises(ValueError, match="system keys"):
        FoundationDBStore(standin.open(), standin, prefix=b"\xff")


def test_the_cluster_tests_prefix_is_valid_whatever_the_uuid(standin: StandinFDB) -> None:
    # Raw uuid4().bytes started with 0xff once in 256 runs: the store refused it.
    for tag in (uuid.UUID(bytes=b"\xff" * 16), uuid.UUID(int=0), uuid.uuid4()):
        FoundationDBStore(standin.open(), standin, prefix=fdb_test_prefix(tag))


# -- the retry loop --------------------------------------------------------------


@pytest.mark.parametrize("code", [1020, 1021, 1007, 1009, 1213, 1039])
async def test_retryable_commit_errors_go_through_on_error_and_retry(
    standin: StandinFDB, code: int
) -> None:
    store = await open_store(standin)
    standin.inject("commit", code, times=2)
    body = Body()
    assert await store.transact(body) == "done"
    assert body.runs == 3
    assert standin.on_error_calls == [code, code]
    assert standin.backdoor_get(b"k") == b"v3"
    assert standin.commits == 1


async def test_read_errors_in_the_body_are_retried(standin: StandinFDB) -> None:
    store = await open_store(standin)
    standin.inject("get", 1007)
    standin.inject("get_range", 1020)

    async def body(tr: Transaction) -> list[Any]:
        await tr.get(b"a")
        return await tr.get_range(b"a", b"z")

    assert await store.transact(body) == []
    assert standin.on_error_calls == [1007, 1020]


async def test_each_attempt_gets_a_fresh_view_and_the_old_one_is_closed(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin)
    standin.inject("commit", 1020)
    body = Body()
    await store.transact(body)
    first, second = body.views
    assert first is not second
    with pytest.raises(TransactionClosedError):
        await first.get(b"k")


async def test_retry_limit_is_a_transaction_option_and_ends_the_loop(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin, retry_limit=2)
    standin.inject("commit", 1020, times=5)
    body = Body()
    with pytest.raises(ConflictError) as raised:
        await store.transact(body)
    assert body.runs == 3
    assert standin.on_error_calls == [1020, 1020, 1020]  # the third re-raised it
    assert isinstance(raised.value.__cause__, FDBError)
    assert standin.backdoor_get(b"k") is None
    assert standin.cancelled_transactions == 1


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (2101, TransactionTooLargeError),
        (2102, KeyTooLargeError),
        (2103, ValueTooLargeError),
        (1025, TransactionClosedError),
        (2104, StoreUnavailableError),
        (4100, StoreError),
    ],
)
async def test_errors_that_on_error_rejects_are_raised_mapped_after_one_run(
    standin: StandinFDB, code: int, expected: type[Exception]
) -> None:
    store = await open_store(standin)
    standin.inject("commit", code)
    body = Body()
    with pytest.raises(expected) as raised:
        await store.transact(body)
    assert not isinstance(raised.value, RetryableError)
    assert body.runs == 1
    assert standin.on_error_calls == [code]
    assert standin.cancelled_transactions == 1


async def test_other_exceptions_cancel_the_transaction_without_on_error(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin)

    async def body(tr: Transaction) -> None:
        tr.set(b"k", b"v")
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await store.transact(body)
    assert standin.on_error_calls == []
    assert standin.cancelled_transactions == 1
    assert standin.backdoor_get(b"k") is None


async def test_a_retryable_error_raised_by_the_body_is_retried_through_on_error(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin)
    runs = 0

    async def body(tr: Transaction) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ConflictError("the body decided it conflicted")
        if runs == 2:
            raise TransactionTooOldError("the body's own too-old")

    await store.transact(body)
    assert runs == 3
    assert standin.on_error_calls == [1020, 1007]


@pytest.mark.parametrize(
    ("raised", "code"),
    [
        (CommitUnknownResultError("the body's own unknown result"), 1021),  # not 1020
        (RetryableError("a plain transient failure"), 1009),  # retried, not raised
    ],
)
async def test_each_retryable_error_of_the_body_reaches_on_error_as_its_own_code(
    standin: StandinFDB, raised: RetryableError, code: int
) -> None:
    store = await open_store(standin)
    body = Body()

    async def failing_once(tr: Transaction) -> str:
        result = await body(tr)
        if body.runs == 1:
            raise raised
        return result

    assert await store.transact(failing_once) == "done"
    assert body.runs == 2
    assert standin.on_error_calls == [code]
    assert standin.backdoor_get(b"k") == b"v2"


async def test_a_view_left_behind_by_a_retried_attempt_cannot_write_into_the_next(
    standin: StandinFDB,
) -> None:
    # The body raises before its view fails (no failed read or commit closed
    # it): transact must close it, or a straggler holding it writes into the
    # reset transaction that the next attempt commits.
    store = await open_store(standin)
    views: list[Transaction] = []

    async def body(tr: Transaction) -> None:
        views.append(tr)
        if len(views) == 1:
            raise ConflictError("the body saw a conflict")
        with pytest.raises(TransactionClosedError):
            views[0].set(b"stale", b"from the first attempt")
        tr.set(b"k", b"fresh")

    await store.transact(body)
    assert standin.backdoor_get(b"k") == b"fresh"
    assert standin.backdoor_get(b"stale") is None


async def test_the_next_attempt_waits_for_on_error_to_back_off(standin: StandinFDB) -> None:
    store = await open_store(standin)
    standin.slow("on_error", 0.05)
    started = time.monotonic()
    body = Body()

    async def failing_once(tr: Transaction) -> str:
        result = await body(tr)
        if body.runs == 1:
            raise ConflictError("conflict")
        return result

    with anyio.fail_after(5):
        await store.transact(failing_once)
    assert time.monotonic() - started >= 0.05
    assert body.runs == 2
    # and check_clean: nothing touched the transaction while on_error was pending


async def test_an_error_that_on_error_raises_is_mapped_by_its_own_code(
    standin: StandinFDB,
) -> None:
    # A conflict, then the timeout expires during on_error's backoff: on_error
    # fails with 1031 (the client's reset promise), which is what surfaces.
    store = await open_store(standin, transaction_timeout=0.1)
    standin.inject("commit", 1020)
    standin.slow("on_error", 5)
    with anyio.fail_after(5), pytest.raises(TransactionTimedOutError) as raised:
        await store.transact(Body())
    assert isinstance(raised.value.__cause__, FDBError)
    assert raised.value.__cause__.code == 1031
    assert standin.on_error_calls == [1020]


async def test_transaction_timeout_is_a_transaction_option_and_is_not_retried(
    standin: StandinFDB,
) -> None:
    store = await open_store(standin, transaction_timeout=0.2)
    standin.slow("get", 30)
    started = time.monotonic()
    with anyio.fail_after(5), pytest.raises(TransactionTimedOutError):
        await store.transact(Body())
    assert time.monotonic() - started < 2
    assert standin.on_error_calls == [1031]


async def test_timeout_covers_retries(standin: StandinFDB) -> None:
    store = await open_store(standin, transaction_timeout=0.3)
    standin.inject("commit", 1020, times=10, delay=0.1)
    body = Body()
    # The timeout lands during a commit: that commit may still land, so unknown.
    with anyio.fail_after(5), pytest.raises(CommitUnknownResultError):
        await store.transact(body)
    assert 2 <= body.runs <= 4
    assert standin.on_error_calls[-1] == 1031


# -- error mapping at the boundary ---------------------------------------------------

MAPPING = [
    (1020, ConflictError),
    (1021, CommitUnknownResultError),
    (1039, CommitUnknownResultError),
    (1007, TransactionTooOldError),
    (1009, RetryableError),
    (1213, RetryableError),
    # Every other code the 7.3 client's on_error retries (fdb_error_predicate).
    (1037, RetryableError),
    (1038, RetryableError),
    (1042, RetryableError),
    (1051, RetryableError),
    (1078, RetryableError),
    (1223, RetryableError),
    (1235, RetryableError),
    (1031, TransactionTimedOutError),
    (2101, TransactionTooLargeError),
    (2102, KeyTooLargeError),
    (2103, ValueTooLargeError),
    (1025, TransactionClosedError),
    (1515, StoreUnavailableError),
    (2104, StoreUnavailableError),
    (2125, StoreUnavailableError),
    (4100, StoreError),
]


@pytest.mark.parametrize(("code", "expected"), MAPPING)
@pytest.mark.parametrize("op", ["commit", "get", "get_range"])
async def test_error_mapping(
    standin: StandinFDB, code: int, expected: type[StoreError], op: str
) -> None:
    store = await open_store(standin)
    standin.inject(op, code)
    tr = store.create_transaction()
    tr.set(b"k", b"v")
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "commit": tr.commit,
        "get": functools.partial(tr.get, b"k"),
        "get_range": functools.partial(tr.get_range, b"a", b"z"),
    }
    call = calls[op]
    if op == "commit" and code == 1031:
        expected = CommitUnknownResultError  # timed out once sent: it may still commit
    with pytest.raises(StoreError) as raised:
        await call()
    assert type(raised.value) is expected
    assert isinstance(raised.value.__cause__, FDBError)
    assert raised.value.__cause__.code == code
    assert f"FoundationDB error {code}" in str(raised.value)
    with pytest.raises(TransactionClosedError):  # unusable after a failure
        await tr.get(b"k")


async def test_size_limits_are_checked_at_the_call_site(standin: StandinFDB) -> None:
    store = await open_store(standin, prefix=b"p" * 10)
    tr = store.create_transaction()
    with pytest.raises(KeyTooLargeError, match="less the 10-byte prefix"):
        tr.set(b"k" * 9_991, b"v")
    tr.set(b"k" * 9_990, b"v")  # 10,000 bytes with the prefix
    with pytest.raises(ValueTooLargeError):
        tr.set(b"k", b"v" * 100_001)
    await tr.commit()


async def test_keys_count_against_the_transaction_size_budget(standin: StandinFDB) -> None:
    store = FoundationDBStore(standin.open(), standin, limits=Limits(transaction_bytes=2_000))
    keys = [b"%03d" % n + b"k" * 97 for n in range(30)]  # 3,000 bytes of keys

    def each(write: Callable[[bytes], None]) -> None:
        for key in keys:
            write(key)

    for write in (lambda tr: lambda key: tr.set(key, b""), lambda tr: tr.clear):
        tr = store.create_transaction()
        with pytest.raises(TransactionTooLargeError):
            each(write(tr))
        tr.cancel()
