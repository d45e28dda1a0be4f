"""The FoundationDB store's own control flow, on a stand-in for the ``fdb`` bindings.

No FoundationDB cluster or client library exists where these run, so the store
talks to the ``tests.fdb_standin`` package: the bindings' surface, backed by the memory
store, resolving futures and calling their callbacks on a separate network
thread like the real client. These tests check what the store itself does with
that surface: the retry loop over ``on_error``, error mapping, range paging,
bridging futures to trio and asyncio, cancellation, late callbacks, watches.
They say nothing about FoundationDB itself: ``tests/test_store_fdb.py`` runs the
conformance suite against a real cluster when one is reachable.

asyncio runs in debug mode here, so a call into the loop from the network
thread that is not thread-safe raises instead of passing by luck.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import functools
import itertools
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
import sniffio
import trio

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
from quickq.stores import CommitFault, Limits, Store, SupportsWatch, Transaction
from quickq.stores.fdb import DEFAULT_API_VERSION, FoundationDBStore
from quickq.testing import StoreTests

from ._stores import fdb_test_prefix
from .fdb_standin import FDBError, StandinFDB


@pytest.fixture(
    params=[
        pytest.param(("trio", {}), id="trio"),
        pytest.param(("asyncio", {"debug": True}), id="asyncio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


def _check_clean(fdb: StandinFDB) -> None:
    """What must hold after every test: no thread ever blocked on a future, and no
    ready callback raised (the real bindings would print and drop it)."""
    assert fdb.network.blocking_waits == 0, "a future was waited for by blocking a thread"
    assert fdb.network.callback_errors == []
    assert fdb.network.unexpected_errors == []


@pytest.fixture
def standin() -> Iterator[StandinFDB]:
    fdb = StandinFDB(page_size=3)
    yield fdb
    fdb.close()
    _check_clean(fdb)


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
        _check_clean(fdb)

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
    await store.transact(_noop)
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


async def _noop(tr: Transaction) -> None:
    return None


async def _open(standin: StandinFDB, **options: Any) -> FoundationDBStore:
    store = await FoundationDBStore.open(bindings=standin, **options)
    standin.cancelled_transactions = 0  # not counting open's probe
    return store


class Body:
    """A transaction body that counts its runs and writes one key."""

    def __init__(self) -> None:
        self.runs = 0
        self.views: list[Transaction] = []

    async def __call__(self, tr: Transaction) -> str:
        self.runs += 1
        self.views.append(tr)
        await tr.get(b"seen")
        tr.set(b"k", b"v%d" % self.runs)
        return "done"


@pytest.mark.parametrize("code", [1020, 1021, 1007, 1009, 1213, 1039])
async def test_retryable_commit_errors_go_through_on_error_and_retry(
    standin: StandinFDB, code: int
) -> None:
    store = await _open(standin)
    standin.inject("commit", code, times=2)
    body = Body()
    assert await store.transact(body) == "done"
    assert body.runs == 3
    assert standin.on_error_calls == [code, code]
    assert standin.backdoor_get(b"k") == b"v3"
    assert standin.commits == 1


async def test_read_errors_in_the_body_are_retried(standin: StandinFDB) -> None:
    store = await _open(standin)
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
    store = await _open(standin)
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
    store = await _open(standin, retry_limit=2)
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
    store = await _open(standin)
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
    store = await _open(standin)

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
    store = await _open(standin)
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
    store = await _open(standin)
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
    store = await _open(standin)
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
    store = await _open(standin)
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
    # and _check_clean: nothing touched the transaction while on_error was pending


async def test_an_error_that_on_error_raises_is_mapped_by_its_own_code(
    standin: StandinFDB,
) -> None:
    # A conflict, then the timeout expires during on_error's backoff: on_error
    # fails with 1031 (the client's reset promise), which is what surfaces.
    store = await _open(standin, transaction_timeout=0.1)
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
    store = await _open(standin, transaction_timeout=0.2)
    standin.slow("get", 30)
    started = time.monotonic()
    with anyio.fail_after(5), pytest.raises(TransactionTimedOutError):
        await store.transact(Body())
    assert time.monotonic() - started < 2
    assert standin.on_error_calls == [1031]


async def test_timeout_covers_retries(standin: StandinFDB) -> None:
    store = await _open(standin, transaction_timeout=0.3)
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
    store = await _open(standin)
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
    store = await _open(standin, prefix=b"p" * 10)
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


# -- range reads, paged -------------------------------------------------------------

KEYS = [b"k%02d" % i for i in range(50)]


async def _filled(standin: StandinFDB, prefix: bytes = b"p/") -> FoundationDBStore:
    for key in KEYS:
        standin.backdoor_set(prefix + key, key.upper())
    standin.backdoor_set(b"other/k00", b"not mine")  # outside the prefix
    return await _open(standin, prefix=prefix)


@pytest.mark.parametrize("page_size", [1, 3, 100])
@pytest.mark.parametrize(
    ("begin", "end"), [(b"", b"\xff"), (b"k05", b"k45"), (b"k10", b"k10\x00"), (b"k4", b"k5")]
)
@pytest.mark.parametrize("limit", [0, 1, 5, 20, 50, 51])
@pytest.mark.parametrize("reverse", [False, True])
async def test_paged_range_reads_match_the_model(
    standin: StandinFDB, page_size: int, begin: bytes, end: bytes, limit: int, reverse: bool
) -> None:
    standin.page_size = page_size
    store = await _filled(standin)
    expected = [(k, k.upper()) for k in KEYS if begin <= k < end]
    if reverse:
        expected.reverse()
    if limit:
        expected = expected[:limit]
    tr = store.create_transaction()
    assert await tr.get_range(begin, end, limit=limit, reverse=reverse) == expected
    tr.cancel()
    # Page by page: each asks only for the rows still wanted, iteration counts up,
    # and exact mode is used only under a limit.
    calls = standin.range_calls
    assert [c["iteration"] for c in calls] == list(range(1, len(calls) + 1))
    assert {c["mode"] for c in calls} == {0 if limit else -2}
    if limit:
        assert calls[0]["limit"] == limit
        for before, after in itertools.pairwise(calls):
            assert after["limit"] < before["limit"]
    assert len(calls) <= len(expected) // page_size + 1


async def test_many_pages(standin: StandinFDB) -> None:
    standin.page_size = 3
    store = await _filled(standin)
    tr = store.create_transaction()
    assert len(await tr.get_range(b"", b"\xff")) == 50
    assert len(standin.range_calls) == 17  # 16 full pages and one of 2
    tr.cancel()


async def test_snapshot_range_reads_page_on_the_snapshot_and_take_no_conflict(
    standin: StandinFDB,
) -> None:
    store = await _filled(standin)
    reader = store.create_transaction()
    assert len(await reader.get_range(b"k", b"l", snapshot=True)) == 50
    assert standin.range_calls and all(c["snapshot"] for c in standin.range_calls)
    writer = store.create_transaction()
    writer.set(b"k20", b"changed")
    await writer.commit()
    reader.set(b"out", b"1")
    await reader.commit()  # no conflict

    standin.range_calls.clear()
    reader = store.create_transaction()
    await reader.get_range(b"k", b"l")
    assert not any(c["snapshot"] for c in standin.range_calls)
    writer = store.create_transaction()
    writer.set(b"k20", b"again")
    await writer.commit()
    reader.set(b"out", b"2")
    with pytest.raises(ConflictError):
        await reader.commit()


async def test_limited_paged_read_conflicts_only_on_what_it_observed(
    standin: StandinFDB,
) -> None:
    store = await _filled(standin)
    for written, conflicts in ((b"k12", False), (b"k09", True)):
        reader = store.create_transaction()
        assert len(await reader.get_range(b"k", b"l", limit=10)) == 10  # k00..k09
        writer = store.create_transaction()
        writer.set(written, b"x")
        await writer.commit()
        reader.set(b"out", b"1")
        if conflicts:
            with pytest.raises(ConflictError):
                await reader.commit()
        else:
            await reader.commit()


async def test_a_paged_read_of_a_whole_range_conflicts_on_all_of_it(
    standin: StandinFDB,
) -> None:
    # The last page ends at the range's end, not at its last row: an insertion
    # after the last row (k49) but inside [k, l) conflicts.
    store = await _filled(standin)
    reader = store.create_transaction()
    assert len(await reader.get_range(b"k", b"l")) == 50
    writer = store.create_transaction()
    writer.set(b"k99", b"new")
    await writer.commit()
    reader.set(b"out", b"1")
    with pytest.raises(ConflictError):
        await reader.commit()


async def test_snapshot_point_reads_take_no_conflict(standin: StandinFDB) -> None:
    store = await _open(standin)
    for snapshot in (True, False):
        reader = store.create_transaction()
        await reader.get(b"k", snapshot=snapshot)
        writer = store.create_transaction()
        writer.set(b"k", b"x")
        await writer.commit()
        reader.set(b"out", b"1")
        if snapshot:
            await reader.commit()
        else:
            with pytest.raises(ConflictError):
                await reader.commit()


# -- atomic add, conflict ranges, prefixes -----------------------------------------------


async def test_add_is_fdb_add_with_a_little_endian_8_byte_operand(standin: StandinFDB) -> None:
    store = await _open(standin)
    tr = store.create_transaction()
    tr.add(b"n", 5)
    tr.add(b"n", -1)
    tr.add(b"n", 2**64 + 3)  # wraps like the 64-bit counter it is
    await tr.commit()
    assert standin.add_params == [struct.pack("<q", 5), b"\xff" * 8, struct.pack("<q", 3)]
    assert standin.backdoor_get(b"n") == struct.pack("<q", 7)


async def test_prefixes_isolate_tenants(standin: StandinFDB) -> None:
    a = await _open(standin, prefix=b"a/")
    b = await _open(standin, prefix=b"b/")
    tr = a.create_transaction()
    tr.set(b"k", b"from a")
    tr.add_read_conflict_range(b"k", b"l")
    tr.add_read_conflict_key(b"m")
    await tr.commit()
    tr = b.create_transaction()
    assert await tr.get(b"k") is None
    assert await tr.get_range(b"", b"\xff") == []
    tr.clear_range(b"", b"\xff")
    await tr.commit()
    assert standin.backdoor_get(b"a/k") == b"from a"
    assert [k for k, _ in standin.store.raw_items()] == [b"a/k"]
    tr = a.create_transaction()
    assert await tr.get_range(b"", b"\xff") == [(b"k", b"from a")]  # prefix stripped
    tr.cancel()


async def test_conflict_ranges_are_prefixed(standin: StandinFDB) -> None:
    a = await _open(standin, prefix=b"a/")
    reader = a.create_transaction()
    reader.add_read_conflict_range(b"k", b"l")
    writer = a.create_transaction()
    writer.set(b"k1", b"x")
    await writer.commit()
    reader.set(b"out", b"1")
    with pytest.raises(ConflictError):
        await reader.commit()


# -- futures on the event loop ---------------------------------------------------------


async def test_callbacks_run_on_the_network_thread(standin: StandinFDB) -> None:
    store = await _open(standin)
    standin.network.callback_threads.clear()  # open's probe may have been ready at once
    standin.slow("get", 0.05)  # not ready at once: the callback comes from the network
    tr = store.create_transaction()
    assert await tr.get(b"k") is None
    tr.cancel()
    assert standin.network.callback_threads == {standin.network.thread.ident}
    assert threading.get_ident() not in standin.network.callback_threads


async def test_waiting_does_not_block_the_event_loop(standin: StandinFDB) -> None:
    store = await _open(standin)
    standin.slow("get", 0.3, times=20)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async def reader() -> None:
        tr = store.create_transaction()
        await tr.get(b"k")
        tr.cancel()

    started = time.monotonic()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async with anyio.create_task_group() as readers:
                for _ in range(20):
                    readers.start_soon(reader)
            tg.cancel_scope.cancel()
    assert time.monotonic() - started < 1.5  # 20 slow reads overlapped
    assert ticks >= 10


async def test_cancelling_the_task_cancels_the_future(standin: StandinFDB) -> None:
    store = await _open(standin)
    standin.hold("get")
    tr = store.create_transaction()
    with anyio.move_on_after(0.05) as scope:
        await tr.get(b"k")
    assert scope.cancelled_caught
    assert standin.network.cancelled == ["get"]
    assert await tr.get(b"k") is None  # the transaction itself is still usable
    tr.cancel()


async def test_cancelling_transact_cancels_the_commit_and_the_transaction(
    standin: StandinFDB,
) -> None:
    store = await _open(standin)
    standin.hold("commit")
    with anyio.move_on_after(0.05):
        await store.transact(Body())
    assert standin.network.cancelled == ["commit"]
    assert standin.cancelled_transactions == 1
    assert standin.on_error_calls == []


async def test_a_late_callback_after_cancellation_is_harmless(standin: StandinFDB) -> None:
    store = await _open(standin)
    standin.network.late_cancel_callbacks = True
    standin.hold("get")
    tr = store.create_transaction()
    with anyio.move_on_after(0.05):
        await tr.get(b"k")
    await anyio.sleep(0.05)  # the cancellation reaches the network thread
    assert len(standin.network.held_callbacks) == 1
    standin.network.release_held_callbacks()
    await anyio.sleep(0.01)  # the wake-up, if any, reaches the loop
    assert await tr.get(b"k") is None
    tr.cancel()


def _late_after_loop_finished(run: Any) -> None:
    fdb = StandinFDB()
    fdb.network.late_cancel_callbacks = True

    async def main() -> None:
        store = await FoundationDBStore.open(bindings=fdb)
        fdb.hold("get")
        tr = store.create_transaction()
        with anyio.move_on_after(0.05):
            await tr.get(b"k")
        await anyio.sleep(0.05)

    run(main)
    assert len(fdb.network.held_callbacks) == 1
    fdb.network.release_held_callbacks()  # the event loop is gone by now
    fdb.close()
    _check_clean(fdb)


def test_a_callback_after_trio_run_finished_is_harmless() -> None:
    _late_after_loop_finished(trio.run)


def test_a_callback_after_the_asyncio_loop_closed_is_harmless() -> None:
    _late_after_loop_finished(lambda main: asyncio.run(main(), debug=True))


# -- watches ------------------------------------------------------------------------


async def test_wait_for_change_commits_a_watch_and_wakes_on_a_write(
    standin: StandinFDB,
) -> None:
    store = await _open(standin, prefix=b"p/")
    assert isinstance(store, SupportsWatch)
    standin.backdoor_set(b"p/k", b"1")
    woke = anyio.Event()

    async def waiter() -> None:
        await store.wait_for_change(b"k", b"1")
        woke.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.sleep(0.05)
            assert not woke.is_set()
            tr = store.create_transaction()
            tr.set(b"k", b"2")
            await tr.commit()
            await woke.wait()


async def test_cancelling_wait_for_change_cancels_the_watch(standin: StandinFDB) -> None:
    store = await _open(standin, transaction_timeout=0.05)
    with anyio.move_on_after(0.2) as scope:  # longer than the transaction timeout
        await store.wait_for_change(b"k", None)
    assert scope.cancelled_caught  # the timeout did not fire the watch
    assert standin.network.cancelled == ["watch"]


@pytest.mark.parametrize(("code", "raises"), [(1032, True), (1029, False), (1101, False)])
async def test_failed_watches(standin: StandinFDB, code: int, raises: bool) -> None:
    store = await _open(standin)
    standin.inject("watch", code)
    with anyio.fail_after(5):
        if raises:
            with pytest.raises(StoreError, match=str(code)):
                await store.wait_for_change(b"k", None)
        else:
            await store.wait_for_change(b"k", None)  # spurious: callers re-check


async def test_wait_for_change_retries_its_read(standin: StandinFDB) -> None:
    store = await _open(standin)
    standin.inject("get", 1007)
    standin.backdoor_set(b"k", b"1")
    with anyio.fail_after(5):
        await store.wait_for_change(b"k", b"0")
    assert standin.on_error_calls == [1007]


def _ended(standin: StandinFDB) -> list[str]:
    """The state of every transaction the store made: none may be left open."""
    return [tr.state for tr in standin.transactions]


async def test_open_ends_its_probe_transaction(standin: StandinFDB) -> None:
    await FoundationDBStore.open(bindings=standin)
    assert _ended(standin) == ["cancelled"]


async def test_wait_for_change_ends_its_transaction_when_the_value_differs(
    standin: StandinFDB,
) -> None:
    store = await _open(standin)
    standin.backdoor_set(b"k", b"1")
    with anyio.fail_after(5):
        await store.wait_for_change(b"k", b"0")  # differs already: no watch
    assert _ended(standin) == ["cancelled", "cancelled"]


async def test_a_cancelled_wait_for_change_cancels_its_transaction(standin: StandinFDB) -> None:
    # Left open, a commit already sent could still land and register a watch
    # nobody waits for (one of the client's 10,000).
    store = await _open(standin)
    standin.hold("commit")
    with anyio.move_on_after(0.05) as scope:
        await store.wait_for_change(b"k", None)
    assert scope.cancelled_caught
    assert _ended(standin) == ["cancelled", "cancelled"]


def _implements_the_protocols(store: FoundationDBStore) -> tuple[Store, SupportsWatch]:
    """Checked by mypy: FoundationDBStore is a Store (and its transactions are
    Transactions) and supports watches."""
    return store, store
