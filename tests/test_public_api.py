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
