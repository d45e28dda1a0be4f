"""The store conformance suite: a pytest base class every store's tests subclass.

A store passes when every test here passes: the promises of
:class:`~quickq.stores.Store` and :class:`~quickq.stores.Transaction`, each in a
test named after it, plus :class:`~quickq.testing.StoreMachine`'s interleaved
transactions checked against a model. The tests live by concept in
``_store_reads``, ``_store_conflicts``, ``_store_transact`` and
``_store_faults``; this class gathers them.
"""

from __future__ import annotations

from ._store_base import S
from ._store_conflicts import ConflictTests
from ._store_faults import FaultTests
from ._store_reads import ReadWriteTests
from ._store_transact import TransactTests

__all__ = ["StoreTests"]


class StoreTests(
    ReadWriteTests[S], ConflictTests[S], TransactTests[S], FaultTests[S], abstract=True
):
    """Conformance tests for a :class:`~quickq.stores.Store`; subclass to run them.

    Generic in the store class, as zarr's ``StoreTests`` is, so that a
    subclass's hooks take its own store type::

        class TestMyStore(StoreTests[MyStore]):
            limits = Limits()
            supports_fault_injection = True
            supports_mock_clock = True

            @pytest.fixture
            async def store(self) -> AsyncIterator[MyStore]: ...

            def backdoor_get(self, store: MyStore, key: bytes) -> bytes | None: ...

            def backdoor_set(self, store: MyStore, key: bytes, value: bytes | None) -> None: ...

    A subclass declares what the store can do, with no defaults (a class
    that leaves one out fails when it is defined, naming it):

    - :attr:`limits`: the limits the store enforces;
    - :attr:`supports_fault_injection`: whether :meth:`inject_commit_fault`
      works (the default calls ``store.inject(fault)``; override it otherwise);
    - :attr:`supports_mock_clock`: whether transaction age follows the event
      loop's clock, so trio's ``MockClock`` can age transactions.

    and provides:

    - an async-generator pytest fixture ``store`` yielding a fresh, empty store
      (and closing it afterwards);
    - :meth:`backdoor_get` and :meth:`backdoor_set`, which read and write
      committed data *without* the store under test (for the memory store:
      ``raw_get`` and ``raw_set``). They run in the event loop's thread.

    Watches and RetryState are found on the store itself
    (:class:`~quickq.stores.SupportsWatch`,
    :class:`~quickq.stores.SupportsRetryState`); their tests skip without them.
    The tests run under anyio's pytest plugin, on every backend the
    ``anyio_backend`` fixture names. Keys are short byte strings in
    ``[b"", b"\\xff")``, so the store must own that whole key space. A
    subclass meant to be subclassed again passes ``abstract=True`` in its
    class statement.
    """
