"""The public namespaces export exactly their documented names."""

from __future__ import annotations

import quickq
import quickq.stores


def test_quickq_all_is_public_names() -> None:
    public = {n for n in dir(quickq) if not n.startswith("_")} - {"stores", "testing"}
    assert set(quickq.__all__) == public - _submodules(quickq)


def test_stores_all_is_public_names() -> None:
    public = {n for n in dir(quickq.stores) if not n.startswith("_")}
    assert set(quickq.stores.__all__) == public - _submodules(quickq.stores)


def _submodules(module: object) -> set[str]:
    import types

    return {n for n in dir(module) if isinstance(getattr(module, n), types.ModuleType)}


def test_importing_quickq_does_not_load_the_sqlite_store() -> None:
    """The SQLite store (pool, writer thread, schema) loads on first use."""
    import subprocess
    import sys

    code = (
        "import sys, quickq, quickq.stores; print(sorted(m for m in sys.modules if 'sqlite' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    from quickq.stores import SQLiteStore
    from quickq.stores.sqlite import SQLiteStore as direct

    assert SQLiteStore is direct


def test_exports_name_their_public_module() -> None:
    """Reprs and tracebacks say ``quickq.X``, and pickling still finds X."""
    import pickle

    for name in quickq.__all__:
        obj = getattr(quickq, name)
        if callable(obj):
            assert obj.__module__ == "quickq", name
    for name in quickq.stores.__all__:
        obj = getattr(quickq.stores, name)
        if callable(obj):
            assert not obj.__module__.startswith("quickq.stores._"), name
    error = pickle.loads(pickle.dumps(quickq.InvalidArgumentError("bad")))
    assert type(error) is quickq.InvalidArgumentError
    assert pickle.loads(pickle.dumps(quickq.Snooze(3))) == quickq.Snooze(3)
