"""The coffee shop's jobs, for ``quickq demo``.

Worker processes import this module (``quickq worker quickq._cli._demo_jobs:jobs``).
The handlers record what happened in the store itself, under the subspace
``("quickq-demo", run, ...)``:

- every attempt, successful or not, writes an ``attempt`` record in a
  transaction of its own when its work is done: which process ran it, when,
  and how it ended. A job run twice (say, its worker died between doing the
  work and acknowledging it) leaves two successful attempt records;
- a successful attempt also writes a ``done`` record inside the transaction
  that completes the job (``quickq.Complete(writes=...)``): exactly one per
  completed job, however often it ran.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, Final

import anyio
import fdb.tuple as fdb_tuple

from quickq import Backoff, Complete, JobMeta, JobRegistry
from quickq.stores import Store, Transaction, open_store

ROOT: Final = ("quickq-demo",)
STORE_ENV: Final = "QUICKQ_DEMO_STORE"
"""The store URL a worker process records attempts in (the one it consumes)."""
ROAST_SECONDS: Final = 6.0
"""The long job: three times the demo's 2-second lease."""
QUICK_RETRY: Final = Backoff(base=0.3, factor=2.0, cap=2.0, jitter=0.1)

jobs = JobRegistry()

_store: Store | None = None
_lock: anyio.Lock | None = None


def use_store(store: Store | None) -> None:
    """Record into *store* (the demo's in-process mode); None: open ``$QUICKQ_DEMO_STORE``."""
    global _store
    _store = store


async def _recording_store() -> Store:
    global _store, _lock
    if _lock is None:
        _lock = anyio.Lock()
    async with _lock:
        if _store is None:
            url = os.environ.get(STORE_ENV)
            if not url:
                raise RuntimeError(f"{STORE_ENV} is not set: run these jobs with `quickq demo`")
            _store = await open_store(url)
    return _store


def record_range(run: str, kind: str) -> tuple[bytes, bytes]:
    """The keys of run *run*'s records of *kind* (``attempt`` or ``done``)."""
    prefix = fdb_tuple.pack((*ROOT, run, kind))
    return prefix + b"\x00", prefix + b"\xff"


def parse_record(value: bytes) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(value)
    return record


def _record_value(meta: JobMeta, started: float, ok: bool, note: str) -> bytes:
    return json.dumps(
        {
            "queue": meta.queue_id,
            "job": meta.item_id,
            "topic": meta.topic,
            "attempt": meta.attempt,
            "pid": os.getpid(),
            "start": started,
            "end": time.time(),
            "ok": ok,
            "note": note,
        }
    ).encode()


async def _record(
    payload: Any, meta: JobMeta, started: float, ok: bool, note: str = ""
) -> Complete | None:
    """Record this attempt; on success, return the Complete that records the completion."""
    store = await _recording_store()
    run = payload["run"]
    key = fdb_tuple.pack(
        (*ROOT, run, "attempt", meta.queue_id, meta.item_id, meta.attempt, os.getpid(), started)
    )
    value = _record_value(meta, started, ok, note)

    async def put(tr: Transaction) -> None:
        tr.set(key, value)

    await store.transact(put)
    if not ok:
        return None
    done_key = fdb_tuple.pack((*ROOT, run, "done", meta.queue_id, meta.item_id))

    async def done(tr: Transaction) -> None:
        tr.set(done_key, value)

    return Complete(writes=done)


async def _serve(payload: Any, meta: JobMeta, low: float, high: float) -> Complete | None:
    started = time.time()
    await anyio.sleep(random.uniform(low, high))
    return await _record(payload, meta, started, True)


@jobs.job("order:espresso", priority=10, backoff=QUICK_RETRY)
async def espresso(payload: Any, meta: JobMeta) -> Complete | None:
    return await _serve(payload, meta, 0.1, 0.3)


@jobs.job("order:latte", priority=50, backoff=QUICK_RETRY)
async def latte(payload: Any, meta: JobMeta) -> Complete | None:
    """A flaky latte fails its first two attempts, then succeeds on the third."""
    started = time.time()
    await anyio.sleep(random.uniform(0.2, 0.4))
    if payload.get("flaky") and meta.attempt < 3:
        await _record(payload, meta, started, False, "steam wand clogged")
        raise RuntimeError("steam wand clogged")
    return await _record(payload, meta, started, True)


@jobs.job("order:pastry", priority=100, backoff=QUICK_RETRY)
async def pastry(payload: Any, meta: JobMeta) -> Complete | None:
    return await _serve(payload, meta, 0.05, 0.2)


@jobs.job("roast:beans", priority=20)
async def roast(payload: Any, meta: JobMeta) -> Complete | None:
    """Runs well past the lease: the consumer keeps extending it."""
    return await _serve(payload, meta, ROAST_SECONDS, ROAST_SECONDS)


@jobs.job("order:unicorn-frappe", max_retries=2, backoff=QUICK_RETRY)
async def unicorn_frappe(payload: Any, meta: JobMeta) -> None:
    """The poison job: fails every attempt, so it ends in the dead letters."""
    started = time.time()
    await anyio.sleep(0.05)
    await _record(payload, meta, started, False, "no such drink")
    raise ValueError("no such drink: unicorn frappe")


@jobs.job("report:close-of-day", priority=200)
async def close_of_day(payload: Any, meta: JobMeta) -> Complete | None:
    return await _serve(payload, meta, 0.05, 0.1)
