"""A Hypothesis state machine that checks a store against a sorted-dict model.

The machine opens several transactions at once and interleaves their reads,
writes and commits. A small model of optimistic concurrency predicts every
outcome:

- each read returns what the transaction's snapshot (the committed data when it
  began) plus its own writes say;
- each commit conflicts exactly when something it read without ``snapshot``
  was written by a transaction that committed after it began, and otherwise
  succeeds;
- after every step the committed data equals the model's, which applies the
  successful commits one after another in commit order: the store's history is
  serializable, in that order.

Its rules: single steps on up to four open transactions (begin, any read or
write, commit, commit with an injected fault, cancel); ``interleave``, a few
whole transactions whose steps run in a drawn order; ``race``, the history
conflicts are made of (a reader reads, a writer commits inside what it read or
in the gaps between, perhaps while a newer transaction is open, and the reader
re-reads, writes and commits); ``read_your_writes``; ``transact``. Every
example starts from random committed data.

Where FoundationDB leaves the store a choice the model accepts both answers.
Reads that the transaction's own writes fully answer (a key it set or cleared)
*may* take a read conflict but need not (FoundationDB does not; the memory
store does), and a read-only commit may skip its conflict check. A limited range
read conflicts on exactly what it observed.

Hypothesis has no async state machines, so rules stay synchronous and call
into the store's event loop through an anyio blocking portal, or from a worker
thread of that loop (``anyio.to_thread.run_sync``), as zarr's machines do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import anyio.from_thread
import attrs
import hypothesis
import hypothesis.strategies as st
from hypothesis import HealthCheck, note
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .._exceptions import CommitUnknownResultError, ConflictError
from ..stores._faults import CommitFault
from ..stores._protocol import KeyValue, Range, Store, Transaction
from ._store_model import (
    EVERYTHING,
    KEYS,
    ModelTx,
    apply_op,
    keys,
    limits,
    model_range,
    overlaps,
    point,
    reads,
    steps,
    subtract,
    values,
    writes,
)

__all__ = ["MIN_EXAMPLES", "StoreMachine", "machine_settings", "run_store_machine"]

S = TypeVar("S", bound=Store)

MIN_EXAMPLES = 200
"""The machine runs at least this many examples, whatever the loaded profile says."""
STEPS = 20
"""Rules per example unless a heavy profile says otherwise (many rules run
several transactions)."""

_MAX_OPEN = 4
"""Transactions the machine keeps open at once."""


def machine_settings() -> hypothesis.settings:
    """The settings the machine runs with, derived from the loaded profile.

    At least :data:`MIN_EXAMPLES` examples, and no deadline (steps cross
    threads). A profile that asks for more examples than that (a heavy profile
    for long runs) also gets its own ``stateful_step_count``; otherwise
    examples take :data:`STEPS` steps, which keeps the default run fast.
    """
    base = hypothesis.settings()  # the loaded profile's values
    heavy = base.max_examples > MIN_EXAMPLES
    return hypothesis.settings(
        base,
        max_examples=max(MIN_EXAMPLES, base.max_examples),
        stateful_step_count=base.stateful_step_count if heavy else STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@attrs.frozen
class _Loop:
    """How synchronous rules reach the store's event loop."""

    run: Callable[..., Any]  # (async fn, *args) -> result
    run_sync: Callable[..., Any]  # (sync fn, *args) -> result

    @classmethod
    def through(cls, portal: anyio.from_thread.BlockingPortal | None) -> _Loop:
        """Through *portal*, or (without one) from a worker thread of the loop."""
        if portal is not None:
            return cls(run=portal.call, run_sync=portal.call)
        return cls(run=anyio.from_thread.run, run_sync=anyio.from_thread.run_sync)


class StoreMachine(RuleBasedStateMachine, Generic[S]):
    """Checks one store against a sorted-dict model of optimistic concurrency.

    Build it with :func:`run_store_machine`, which takes the same arguments
    (see there) and runs it. Each example starts by clearing the user key space
    ``[b"", b"\\xff")`` of the store and writing some random data, in one
    transaction.
    """

    def __init__(
        self,
        store: S,
        *,
        backdoor_get: Callable[[S, bytes], bytes | None],
        inject_commit_fault: Callable[[S, CommitFault], None] | None = None,
        portal: anyio.from_thread.BlockingPortal | None = None,
    ) -> None:
        super().__init__()
        self.store: S = store
        self._loop = _Loop.through(portal)
        self.backdoor_get: Callable[[S, bytes], bytes | None] = backdoor_get
        self.inject_commit_fault: Callable[[S, CommitFault], None] | None = inject_commit_fault
        self.committed: dict[bytes, bytes] = {}
        """The model's committed data."""
        self.version: int = 0
        """The model's commit version: the commits applied to it so far."""
        self._history: list[tuple[int, list[Range]]] = []  # (version, written ranges)
        self._open: dict[int, ModelTx] = {}
        self._trs: dict[int, Transaction] = {}  # begun, not yet checked
        self.next_id: int = 0
        """The last transaction id handed out (ids start at 1)."""

    # -- helpers --------------------------------------------------------------

    def _pick(self, data: st.DataObject) -> tuple[int, ModelTx]:
        tid = data.draw(st.sampled_from(sorted(self._open)), label="transaction")
        return tid, self._open[tid]

    def _commit_writes(self, ops: list[tuple[Any, ...]], writes: list[Range]) -> None:
        for op in ops:
            apply_op(self.committed, op)
        self.version += 1
        self._history.append((self.version, writes))

    def _conflicts(self, tx: ModelTx, reads: list[Range]) -> bool:
        return any(
            overlaps(r, w)
            for version, written in self._history
            if version > tx.read_version
            for w in written
            for r in reads
        )

    async def _outcome(self, tr: Transaction) -> str:
        try:
            await tr.commit()
        except ConflictError:
            return "conflict"
        except CommitUnknownResultError:
            return "unknown"
        return "ok"

    # -- lifecycle ------------------------------------------------------------

    @initialize(start=st.dictionaries(keys, values))
    def start(self, start: dict[bytes, bytes]) -> None:
        """Replace whatever the store holds with *start*, in one transaction."""

        async def reset(tr: Transaction) -> None:
            tr.clear_range(*EVERYTHING)
            for key, value in start.items():
                tr.set(key, value)

        async def run() -> dict[bytes, bytes]:
            await self.store.transact(reset)
            return self._backdoor_data()

        data = self._loop.run(run)
        self._commit_writes([("set", k, v) for k, v in start.items()], [EVERYTHING])
        self._check_data(data)

    def teardown(self) -> None:
        """Cancel every transaction still open at the end of the example."""
        trs = [tx.tr for tx in self._open.values()] + list(self._trs.values())
        self._open.clear()
        self._trs.clear()

        def cancel_all() -> None:
            for tr in trs:
                tr.cancel()

        self._loop.run_sync(cancel_all)

    def _backdoor_data(self) -> dict[bytes, bytes]:
        found = {k: self.backdoor_get(self.store, k) for k in KEYS}
        return {k: v for k, v in found.items() if v is not None}

    def _check_data(self, data: dict[bytes, bytes]) -> None:
        """The invariant, checked after every rule: committed data equals the model."""
        assert data == self.committed, "the committed data differs from the model"

    # -- steps ------------------------------------------------------------------------
    #
    # A step is a tuple (name, *arguments) on one transaction. A rule runs its
    # steps on the store in one call into the event loop (each call crosses
    # threads, which is slow), records what each returned, and only then checks
    # the results against the model, step by step, in the same order.

    async def _perform(self, schedule: list[tuple[int, tuple[Any, ...]]]) -> list[Any]:
        results: list[Any] = []
        for tid, step in schedule:
            name, args = step[0], step[1:]
            if name == "begin":
                tr = self._trs[tid] = self.store.create_transaction()
                # Pin the read version now: FoundationDB takes it at the first read.
                results.append(await tr.get(KEYS[0], snapshot=True))
                continue
            tr = self._trs[tid] if tid in self._trs else self._open[tid].tr
            if name == "get":
                results.append(await tr.get(args[0], snapshot=args[1]))
            elif name == "get_range":
                begin, end, limit, reverse, snapshot = args
                results.append(
                    await tr.get_range(begin, end, limit=limit, reverse=reverse, snapshot=snapshot)
                )
            elif name == "commit":
                if args[0] is not None:
                    assert self.inject_commit_fault is not None
                    self.inject_commit_fault(self.store, args[0])
                results.append(await self._outcome(tr))
            else:
                results.append(getattr(tr, name)(*args))
        return results

    def _run(self, schedule: list[tuple[int, tuple[Any, ...]]]) -> list[Any]:
        """Perform *schedule* on the store in one call, then check it step by step."""

        async def perform() -> tuple[list[Any], dict[bytes, bytes]]:
            return await self._perform(schedule), self._backdoor_data()

        results: list[Any]
        data: dict[bytes, bytes]
        results, data = self._loop.run(perform)
        for (tid, step), result in zip(schedule, results, strict=True):
            note(f"tx{tid}.{step[0]}{step[1:]!r} -> {result!r}")
            self._check(tid, step, result)
        self._check_data(data)
        return results

    def _check(self, tid: int, step: tuple[Any, ...], result: Any) -> None:
        name, args = step[0], step[1:]
        if name == "begin":
            assert result == self.committed.get(KEYS[0])
            self._open[tid] = ModelTx(self._trs.pop(tid), self.version, dict(self.committed))
            return
        tx = self._open[tid]
        if name == "get":
            key, snapshot = args
            assert result == tx.view.get(key)
            if not snapshot:
                tx.may.append(point(key))
                if not tx.independent(key):
                    tx.must.append(point(key))
        elif name == "get_range":
            self._check_range(tx, result, *args)
        elif name in ("set", "clear", "add", "compare_and_clear"):
            tx.write(step, point(args[0]))
            if name in ("set", "clear"):  # atomic ops depend on the value before them
                tx.own_keys.add(args[0])
        elif name == "clear_range":
            begin, end = args
            if begin < end:
                tx.write(step, (begin, end))
                tx.own_ranges.append((begin, end))
        elif name == "add_read_conflict_range":
            if args[0] < args[1]:
                tx.must.append(args)
                tx.may.append(args)
        elif name == "add_read_conflict_key":
            tx.must.append(point(args[0]))
            tx.may.append(point(args[0]))
        elif name == "cancel":
            del self._open[tid]
        else:
            assert name == "commit", name
            self._check_commit(tid, args[0], result)

    def _check_range(
        self,
        tx: ModelTx,
        result: list[KeyValue],
        begin: bytes,
        end: bytes,
        limit: int,
        reverse: bool,
        snapshot: bool,
    ) -> None:
        expected = model_range(tx.view, begin, end, limit, reverse)
        assert result == expected
        if snapshot or begin >= end:
            return
        observed = (begin, end)
        if limit and len(expected) == limit:  # stopped early: only what it saw
            last = expected[-1][0]
            observed = (last, end) if reverse else (begin, last + b"\x00")
        tx.may.append(observed)
        tx.must.extend(subtract(observed, tx.holes()))

    def _check_commit(self, tid: int, fault: CommitFault | None, outcome: str) -> None:
        tx = self._open.pop(tid)
        must, may = self._conflicts(tx, tx.must), self._conflicts(tx, tx.may)
        note(f"# tx{tid} must conflict: {must}, may conflict: {may}")
        if not tx.writes:  # read-only: it may skip the conflict check
            assert outcome == "ok" or (outcome == "conflict" and may), outcome
            return
        if fault is CommitFault.CONFLICT or must:  # a real conflict wins over a fault
            assert outcome == "conflict", f"a commit that must conflict: {outcome}"
        elif fault is None:
            expected = ("ok", "conflict") if may else ("ok",)
            assert outcome in expected, f"a commit that cannot conflict: {outcome}"
        else:
            expected = ("unknown", "conflict") if may else ("unknown",)
            assert outcome in expected, f"an injected unknown result: {outcome}"
        if outcome == "ok" or (outcome == "unknown" and fault is CommitFault.UNKNOWN_APPLIED):
            self._commit_writes(tx.ops, tx.writes)

    def _new_tid(self) -> int:
        self.next_id += 1
        return self.next_id

    # -- rules: single steps on the open transactions -------------------------------

    @precondition(lambda self: len(self._open) < _MAX_OPEN)
    @rule()
    def begin(self) -> None:
        """Begin a transaction (at most four stay open) and pin its read version."""
        self._run([(self._new_tid(), ("begin",))])

    @precondition(lambda self: self._open)
    @rule(data=st.data(), step=steps)
    def step(self, data: st.DataObject, step: tuple[Any, ...]) -> None:
        """Run one drawn read or write on an open transaction."""
        self._run([(self._pick(data)[0], step)])

    @precondition(lambda self: self._open)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        """Commit an open transaction: it conflicts exactly when the model says it must."""
        self._run([(self._pick(data)[0], ("commit", None))])

    @precondition(lambda self: self._open)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Cancel an open transaction: nothing it wrote is committed."""
        self._run([(self._pick(data)[0], ("cancel",))])

    @precondition(lambda self: self._open and self.inject_commit_fault is not None)
    @rule(data=st.data(), fault=st.sampled_from(CommitFault))
    def commit_with_fault(self, data: st.DataObject, fault: CommitFault) -> None:
        """Commit an open transaction that writes with an injected fault (when the
        store supports fault injection): it reports the fault, unless it really conflicts."""
        tid, tx = self._pick(data)
        if tx.writes:  # faults are drawn by commits that write
            self._run([(tid, ("commit", fault))])

    # -- rules: whole transactions, interleaved -------------------------------------

    @rule(data=st.data(), scripts=st.lists(st.lists(steps, max_size=4), min_size=2, max_size=3))
    def interleave(self, data: st.DataObject, scripts: list[list[tuple[Any, ...]]]) -> None:
        """Run a few whole transactions (begin, steps, commit), their steps
        interleaved in a drawn order: the concurrent histories OCC must order."""
        todo = [[("begin",), *script, ("commit", None)] for script in scripts]
        tids = [self._new_tid() for _ in todo]
        schedule: list[tuple[int, tuple[Any, ...]]] = []
        while any(todo):
            i = data.draw(st.sampled_from([i for i, t in enumerate(todo) if t]), label="next")
            schedule.append((tids[i], todo[i].pop(0)))
        self._run(schedule)

    @rule(
        read=reads,
        fault=st.sampled_from([None, *CommitFault]),
        bystander=st.booleans(),
        data=st.data(),
    )
    def race(
        self,
        read: tuple[Any, ...],
        fault: CommitFault | None,
        bystander: bool,
        data: st.DataObject,
    ) -> None:
        """The history conflicts are made of: a reader reads; a writer commits a
        write (often inside what the reader read); perhaps a newer transaction
        begins and a second writer commits; the reader reads again (still its
        snapshot), writes and commits (perhaps with an injected fault)."""
        reader, writer = self._new_tid(), self._new_tid()
        _, result = self._run([(reader, ("begin",)), (reader, read)])
        # Where conflicts hide: the keys read, and the gaps (phantoms) between them.
        seen, gaps = [read[1]], [read[1]]
        if read[0] == "get_range":
            seen = [k for k, _ in result]
            gaps = [k for k in KEYS if read[1] <= k < read[2] and k not in seen]
        written = data.draw(
            st.one_of(st.sampled_from(gaps or KEYS), st.sampled_from(seen or KEYS), keys),
            label="writer writes",
        )
        schedule = [
            (writer, ("begin",)),
            (writer, ("set", written, b"writer")),
            (writer, ("commit", None)),
        ]
        if bystander:  # a newer transaction is open while a commit prunes history
            other, second = self._new_tid(), self._new_tid()
            schedule += [
                (other, ("begin",)),
                (second, ("begin",)),
                (second, ("add", data.draw(keys, label="second writer adds"), 1)),
                (second, ("commit", None)),
            ]
        schedule += [
            (reader, read),
            (reader, ("set", data.draw(keys, label="reader writes"), b"reader")),
            (reader, ("commit", fault if self.inject_commit_fault else None)),
        ]
        if bystander:
            schedule.append((other, ("cancel",)))
        self._run(schedule)

    @rule(
        writes=st.lists(writes, min_size=1, max_size=5),
        limit=limits,
        reverse=st.booleans(),
        snapshot=st.booleans(),
    )
    def read_your_writes(
        self, writes: list[tuple[Any, ...]], limit: int, reverse: bool, snapshot: bool
    ) -> None:
        """A transaction writes, then reads everything back merged over the store."""
        tid = self._new_tid()
        everything = ("get_range", *EVERYTHING, limit, reverse, snapshot)
        script = [("begin",), *writes, everything, ("commit", None)]
        self._run([(tid, step) for step in script])

    @rule(read=keys, write=keys)
    def transact(self, read: bytes, write: bytes) -> None:
        """A read-modify-write through ``store.transact`` while others are open."""

        async def body(tr: Transaction) -> None:
            value = await tr.get(read)
            tr.set(write, ((value or b"") + b"+")[-8:])

        async def run() -> dict[bytes, bytes]:
            await self.store.transact(body)
            return self._backdoor_data()

        data = self._loop.run(run)
        new = ((self.committed.get(read) or b"") + b"+")[-8:]
        self._commit_writes([("set", write, new)], [point(write)])
        self._check_data(data)

    @rule()
    def read_everything(self) -> None:
        """A fresh transaction sees exactly the committed data, both ways."""

        async def read() -> tuple[list[KeyValue], list[KeyValue]]:
            tr = self.store.create_transaction()
            try:
                forward = await tr.get_range(*EVERYTHING)
                backward = await tr.get_range(*EVERYTHING, reverse=True)
            finally:
                tr.cancel()
            return forward, backward

        forward, backward = self._loop.run(read)
        assert forward == sorted(self.committed.items())
        assert backward == forward[::-1]


def run_store_machine(
    store: S,
    *,
    backdoor_get: Callable[[S, bytes], bytes | None],
    inject_commit_fault: Callable[[S, CommitFault], None] | None = None,
    portal: anyio.from_thread.BlockingPortal | None = None,
    settings: hypothesis.settings | None = None,
) -> None:
    """Run :class:`StoreMachine` against *store*; raise on the first counterexample.

    This is synchronous. With a *portal* (``anyio.from_thread.start_blocking_portal``)
    every store call goes through it; without one this must run in a worker thread
    of the store's event loop (``await anyio.to_thread.run_sync(...)``). The store
    must start empty; the machine clears ``[b"", b"\\xff")`` before each example.
    *backdoor_get* reads a committed value bypassing the store's transactions; it
    runs in the event loop's thread. Pass *inject_commit_fault* when the store can
    script the outcome of its next writing commit (as ``MemoryStore.inject`` does).
    *settings* defaults to :func:`machine_settings`.
    """

    def factory() -> StoreMachine[S]:
        return StoreMachine(
            store,
            backdoor_get=backdoor_get,
            inject_commit_fault=inject_commit_fault,
            portal=portal,
        )

    run_state_machine_as_test(
        cast("type[StoreMachine[S]]", factory),  # a factory is accepted; the stub says type
        settings=settings or machine_settings(),
    )
