"""Test helpers shipped with quickq: the conformance suite every store runs.

- :class:`StoreTests`: a generic pytest base class; a store's tests subclass
  ``StoreTests[MyStore]``, declare the store's capabilities, provide a ``store``
  fixture and backdoor get/set, and inherit every conformance test.
- :class:`StoreMachine` and :func:`run_store_machine`: a Hypothesis state machine
  that checks interleaved transactions on a store against a sorted-dict model
  (``StoreTests.test_state_machine`` runs it).

Needs the ``testing`` extra (pytest and Hypothesis).
"""

from ._store_machine import MIN_EXAMPLES as MIN_EXAMPLES
from ._store_machine import StoreMachine as StoreMachine
from ._store_machine import machine_settings as machine_settings
from ._store_machine import run_store_machine as run_store_machine
from ._store_tests import StoreTests as StoreTests

__all__ = [
    "MIN_EXAMPLES",
    "StoreMachine",
    "StoreTests",
    "machine_settings",
    "run_store_machine",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__"):
        _obj.__module__ = __name__
del _name, _obj
