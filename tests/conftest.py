"""Shared fixtures: async tests run on both trio and asyncio via anyio's plugin."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
from hypothesis import settings

from quickq.stores import Faults, MemoryStore, Transaction
from quickq.stores.fdb import FoundationDBStore
from quickq.stores.sqlite import SQLiteStore

from ._stores import CLUSTER_FILE, TestStore, fdb_skip_reason, fdb_test_prefix
from .fdb_standin import StandinFDB

# -- per-test time limits -----------------------------------------------------------
#
# pytest-timeout's default "signal" method raises in the main thread, which
# under anyio's trio runner is only the host of the test's event loop: the
# test's tasks and worker threads (a Hypothesis machine shrinking in one, a
# future whose wake-up never comes) go on, and the next async fixture's
# teardown waits for them forever, so the suite hung instead of failing.
# Two guards instead:
# - inside the event loop, every async test runs under ``anyio.fail_after`` at
#   GUARD_SHARE of its pytest-timeout limit: a stuck await is cancelled and
#   that test fails alone, with its traceback, and the suite goes on;
# - pytest-timeout's "thread" method (pyproject.toml) is the backstop for
#   what cancellation cannot reach (a thread, a loop without checkpoints): at
#   the limit it prints every thread's stack and ends the run.

GUARD_SHARE = 0.9


def _time_limit(item: pytest.Function) -> float | None:
    """The test's pytest-timeout limit in seconds (its mark, else the option)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        value: object = marker.args[0]
    else:
        value = item.config.getoption("timeout", None) or item.config.getini("timeout")
    limit = float(value) if isinstance(value, int | float | str) and value != "" else 0.0
    return limit if limit > 0 else None


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    test = pyfuncitem.obj
    limit = _time_limit(pyfuncitem)
    if (
        limit is not None
        and "anyio_backend" in pyfuncitem.funcargs
        and inspect.iscoroutinefunction(test)
    ):
        pyfuncitem.obj = _guarded(test, limit * GUARD_SHARE)
    return (yield)


def _guarded(
    test: Callable[..., Awaitable[object]], seconds: float
) -> Callable[..., Awaitable[object]]:
    """*test*, cancelled after *seconds* of real time (not the loop's clock: a
    MockClock's jumps must not fire it), then failing with TimeoutError."""

    @functools.wraps(test)
    async def guarded(*args: object, **kwargs: object) -> object:
        token = anyio.lowlevel.current_token()
        fired = threading.Event()
        with anyio.CancelScope() as scope:

            def expire() -> None:
                fired.set()
                with contextlib.suppress(Exception):  # the loop may have moved on
                    anyio.from_thread.run_sync(scope.cancel, token=token)

            timer = threading.Timer(seconds, expire)
            timer.daemon = True
            timer.start()
            try:
                result = await test(*args, **kwargs)
            finally:
                timer.cancel()
        if fired.is_set() and scope.cancelled_caught:
            raise TimeoutError(f"the test ran past its limit of {seconds:.0f} s")
        return result

    return guarded


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["memory", "memory-cluster", "sqlite", "fdb-standin", "fdb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestStore]:
    """A fresh, empty store of each kind the queue suite runs on.

    ``memory-cluster`` is the memory store with a cluster's read latency
    (0.5 ms a read) and its 5 s transaction lifetime.
    ``fdb-standin`` is the FoundationDB store's own code over the in-process
    stand-in for the bindings (the tests.fdb_standin package), with small pages.
    ``fdb`` runs when QUICKQ_FDB_CLUSTER_FILE names a reachable cluster (each
    test under its own random prefix, cleared afterwards); otherwise its cases
    are skipped with the reason.
    """
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "memory-cluster":
        yield MemoryStore(faults=Faults(read_latency=0.0005))
    elif request.param == "sqlite":
        async with await SQLiteStore.open(tmp_path / "queue.db", durability="normal") as sqlite:
            yield sqlite
    elif request.param == "fdb-standin":
        standin = await FoundationDBStore.open(bindings=StandinFDB(page_size=7), prefix=b"app/")
        try:
            yield standin
        finally:
            await standin.aclose()
    else:
        reason = fdb_skip_reason()
        if reason is not None:
            pytest.skip(reason)
        fdb = await FoundationDBStore.open(CLUSTER_FILE, prefix=fdb_test_prefix())
        try:
            yield fdb
        finally:
            await fdb.transact(_clear_all)
            await fdb.aclose()


async def _clear_all(tr: Transaction) -> None:
    tr.clear_range(b"", b"\xff")


# Hypothesis profiles. The default keeps the whole suite fast; the store state
# machine runs at least quickq.testing.MIN_EXAMPLES examples whatever the profile.
# QUICKQ_HYPOTHESIS_PROFILE=long for long runs (nightly, before a release).
settings.register_profile("long", max_examples=5_000, stateful_step_count=100, deadline=None)
settings.load_profile(os.environ.get("QUICKQ_HYPOTHESIS_PROFILE", "default"))
