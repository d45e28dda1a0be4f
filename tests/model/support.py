"""Shared by the model tests: Hypothesis settings, and a raw view of the store."""

from __future__ import annotations

import os
from typing import Any

import attrs
import fdb.tuple as fdb_tuple
import hypothesis
import pytest
from hypothesis import HealthCheck, Phase

from quickq import _core
from quickq._core import DeadLetterRecord, Item, Layout, NewItem, QueuePointer, State
from quickq.stores import MemoryStore, Transaction, decode_counter

LONG = os.environ.get("QUICKQ_HYPOTHESIS_PROFILE") == "long"
"""The heavier run (``QUICKQ_HYPOTHESIS_PROFILE=long``): ten times the examples,
twice the steps. tests/conftest.py may load a profile of that name; whatever it
loaded is the base these settings extend, and its example count is kept if larger."""


MODEL_TIME_LIMIT = pytest.mark.timeout(1_800 if LONG else 90)
"""A machine's per-test time limit (tests/conftest.py): the default sizes run
in 5 to 15 s and a failing run finishes shrinking in under a minute."""


def model_settings(*, examples: int, steps: int) -> hypothesis.settings:
    """Settings for one machine: fast by default, heavier under the long profile.

    Deadlines are off (every step crosses into an event loop thread) and the
    too-slow health check is off (steps are few but each does real work). The
    explain phase is skipped: it re-runs a failing machine hundreds of times.
    """
    base = hypothesis.settings()  # the loaded profile's values
    if LONG:
        examples = max(base.max_examples, 10 * examples)
        steps *= 2
    return hypothesis.settings(
        base,
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        phases=[p for p in base.phases if p is not Phase.explain],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


async def enqueue_one(tr: Transaction, layout: Layout, new: NewItem, now: int) -> tuple[Item, bool]:
    """Enqueue one job as ``JobQueue.enqueue`` does: a batch of one, under the
    NewItem's own receipt token. Returns ``(item, created)``."""
    (result,) = await _core.enqueue_many(tr, layout, [new], now, token=new.token)
    return result


@attrs.frozen
class StoreView:
    """Everything a queue layout holds in a store, parsed (read without a transaction)."""

    items: dict[tuple[str, str], Item]
    index: dict[tuple[str, str], list[tuple[Any, ...]]]
    """(qid, state tag) -> the key tails of that index (r, s or l), in key order."""
    dead: dict[tuple[str, str], DeadLetterRecord]
    counters: dict[tuple[str, str], int]
    pointer_records: dict[str, QueuePointer]
    pointer_rows: list[tuple[int, str]]
    batch_markers: list[tuple[str, str]]
    names: set[str]
    receipts: set[str]
    """The token of every enqueue receipt kept."""
    marks: dict[str, bytes]
    """qid -> the token of its due mark."""
    history: dict[tuple[str, int, str], int]
    """(qid, minute, name) -> that history counter."""
    history_index: set[tuple[int, str]]
    """The (minute, qid) rows of the history index."""
    history_totals: dict[tuple[int, str], int]
    """(minute, name) -> the store-wide history counter, its shards summed."""
    heartbeats: dict[str, _core.WorkerRecord] = attrs.field(factory=dict)
    """consumer id -> its heartbeat record."""

    @classmethod
    def read(cls, store: MemoryStore, layout: Layout) -> StoreView:
        view = cls({}, {}, {}, {}, {}, [], [], set(), set(), {}, {}, set(), {})
        for key, value in store.raw_items():
            if not key.startswith(layout.prefix):
                continue
            t = fdb_tuple.unpack(key[len(layout.prefix) :])
            if t[0] == "q":
                qid, kind = t[1], t[2]
                if kind == "i":
                    view.items[qid, t[3]] = Item.from_bytes(value)
                elif kind in tuple(State):
                    view.index.setdefault((qid, kind), []).append(tuple(t[3:]))
                elif kind == "d":
                    view.dead[qid, t[3]] = DeadLetterRecord.from_bytes(value)
                elif kind == "c":
                    view.counters[qid, t[3]] = decode_counter(value)
                elif kind == "p":
                    view.pointer_records[qid] = QueuePointer.from_bytes(value)
                elif kind == "h":
                    view.history[qid, t[3], t[4]] = decode_counter(value)
                else:
                    raise AssertionError(f"unexpected queue key {t!r}")
            elif t[0] == "p":
                view.pointer_rows.append((t[1], t[2]))
            elif t[0] == "b":
                view.batch_markers.append((t[1], t[2]))
            elif t[0] == "n":
                view.names.add(t[1])
            elif t[0] == "x":
                view.receipts.add(t[2])
            elif t[0] == "m":
                view.marks[t[1]] = value
            elif t[0] == "hq":
                view.history_index.add((t[1], t[2]))
            elif t[0] == "ht":
                total = (t[1], t[3])
                view.history_totals[total] = view.history_totals.get(total, 0) + decode_counter(
                    value
                )
            elif t[0] == "hb":
                view.heartbeats[t[1]] = _core.WorkerRecord.from_bytes(value)
            elif t[0] != "w":
                raise AssertionError(f"unexpected key {t!r}")
        return view

    def count(self, qid: str, name: str) -> int:
        return self.counters.get((qid, name), 0)

    def history_sum(self, qid: str, *names: str) -> int:
        """*qid*'s history counters *names*, summed over every minute kept."""
        return sum(n for (q, _, name), n in self.history.items() if q == qid and name in names)

    def check_history(self) -> None:
        """The history's own consistency: every queue-minute is in the index,
        the store-wide counters are the queues' sums, and every timed attempt
        is in one wait bucket and one run bucket."""
        per_minute: dict[tuple[int, str], int] = {}
        for (qid, minute, name), n in self.history.items():
            assert (minute, qid) in self.history_index, (qid, minute)
            per_minute[minute, name] = per_minute.get((minute, name), 0) + n
        plain = {k: n for k, n in self.history_totals.items() if len(k[1]) == 1}
        assert plain == per_minute
        for minute in {m for m, _ in self.history_index}:
            get = per_minute.get
            runs = sum(get((minute, name), 0) for name in "cfsd")
            timed = runs - get((minute, "l"), 0) - get((minute, "u"), 0)
            assert timed >= 0, minute
            for kind in "wr":
                buckets = [
                    n
                    for (m, name), n in self.history_totals.items()
                    if m == minute and len(name) > 1 and name[0] == kind
                ]
                assert sum(buckets) == timed, (minute, kind)
