"""The base of the store conformance suite: what a store's test class declares
and provides, and the helpers the tests share (see :class:`~quickq.testing.StoreTests`)."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Final, Generic, TypeVar

import pytest

from .._exceptions import ConflictError, TransactionClosedError
from ..stores._faults import CommitFault
from ..stores._protocol import Limits, Store, Transaction

S = TypeVar("S", bound=Store)
"""The store class under test."""


_I64 = struct.Struct("<q")
K = b"k"  # the key most tests work on
OUT = b"x"  # a key outside every range the tests read, to make a commit write


def counter(n: int) -> bytes:
    """The bytes of a 64-bit little-endian counter (what ``Transaction.add`` writes)."""
    return _I64.pack(n)


async def _set_and_commit(tr: Transaction, key: bytes, value: bytes) -> None:
    """Set and commit: a store may refuse a bad write at once or at commit."""
    tr.set(key, value)
    await tr.commit()


_DECLARATIONS: Final = ("limits", "supports_fault_injection", "supports_mock_clock")
_HOOKS: Final = ("store", "backdoor_get", "backdoor_set")


def _defined_by(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in c.__dict__), None)


class StoreTestBase(Generic[S]):
    """What every part of the suite relies on; see :class:`~quickq.testing.StoreTests`.

    A concrete subclass must declare every capability (no default stands in
    for an undeclared one) and provide every hook; one that does not fails
    when its class is defined, naming what is missing. A subclass meant to be
    subclassed again says so with ``abstract=True`` in its class statement.
    """

    pytestmark: ClassVar[pytest.MarkDecorator | list[pytest.MarkDecorator]] = pytest.mark.anyio
    """Every test is an anyio test; a subclass's own ``pytestmark`` adds to this one."""

    # -- what a subclass declares (required, no defaults) ---------------------

    limits: ClassVar[Limits]
    """The limits the store enforces (``Limits()``: FoundationDB's)."""
    supports_fault_injection: ClassVar[bool]
    """The store can script its next writing commit's outcome (:meth:`inject_commit_fault`)."""
    supports_mock_clock: ClassVar[bool]
    """Transaction age is measured on the event loop's clock (``anyio.current_time``),
    so trio's ``MockClock`` ages transactions without real sleeping."""

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        missing = [name for name in _DECLARATIONS if not hasattr(cls, name)]
        # Looked up in the class dicts: a fixture is a new object on each access.
        missing += [name for name in _HOOKS if _defined_by(cls, name) is StoreTestBase]
        if missing:
            raise TypeError(
                f"{cls.__name__} must declare or provide {', '.join(missing)} "
                "(see quickq.testing.StoreTests); pass abstract=True for a base class"
            )

    # -- what a subclass provides ---------------------------------------------

    @pytest.fixture
    async def store(self) -> AsyncIterator[S]:
        """Override: yield a fresh, empty store, and close it afterwards."""
        raise NotImplementedError("a StoreTests subclass overrides the `store` fixture")
        yield  # noqa: PT022  (an async generator, like its overrides)

    def backdoor_get(self, store: S, key: bytes) -> bytes | None:
        """Override: the committed value at *key*, read without *store*."""
        raise NotImplementedError

    def backdoor_set(self, store: S, key: bytes, value: bytes | None) -> None:
        """Override: commit *value* at *key* (``None``: clear it) without *store*."""
        raise NotImplementedError

    def inject_commit_fault(self, store: S, fault: CommitFault) -> None:
        """Make the store's next commit that writes fail with *fault*.

        The contract the suite checks: that commit reports the fault (``CONFLICT``:
        :class:`~quickq.ConflictError`, nothing written; ``UNKNOWN_APPLIED``:
        :class:`~quickq.CommitUnknownResultError`, writes applied;
        ``UNKNOWN_NOT_APPLIED``: the same error, nothing written), except that a
        commit which really conflicts fails with ``ConflictError`` and writes
        nothing. The default calls ``store.inject(fault)``.
        """
        store.inject(fault)  # type: ignore[attr-defined]

    # -- helpers ----------------------------------------------------------------

    def _need_faults(self) -> None:
        if not self.supports_fault_injection:
            pytest.skip("this store has no fault injection")

    async def _commit_write(self, store: S, key: bytes, value: bytes) -> None:
        """Commit one write through the store, as a concurrent transaction."""
        tr = store.create_transaction()
        tr.set(key, value)
        await tr.commit()

    async def _outcome_after_write(self, store: S, reader: Transaction, key: bytes) -> bool:
        """Commit a write to *key* in another transaction, then commit *reader*
        (which also writes, so it is checked); True when *reader* conflicted."""
        await self._commit_write(store, key, b"concurrent")
        reader.set(OUT, b"reader")
        try:
            await reader.commit()
        except ConflictError:
            assert self.backdoor_get(store, OUT) is None
            return True
        assert self.backdoor_get(store, OUT) == b"reader"
        return False

    async def _assert_closed(self, tr: Transaction) -> None:
        with pytest.raises(TransactionClosedError):
            await tr.get(K)
        with pytest.raises(TransactionClosedError):
            await tr.get_range(b"a", b"z")
        with pytest.raises(TransactionClosedError):
            await _set_and_commit(tr, K, b"again")
        with pytest.raises(TransactionClosedError):
            await tr.commit()
        tr.cancel()  # always allowed
