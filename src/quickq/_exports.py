"""Giving exports their public home."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Mapping


def publish_exports(namespace: Mapping[str, object], names: Iterable[str], module: str) -> None:
    """Set ``__module__`` of the classes and functions *names* of *namespace*
    that come from *module*'s private submodules to *module* (as trio does), so
    reprs, tracebacks and docs say ``quickq.JobQueue``, not ``quickq._queue``.
    Pickling still finds them: *module* exports each under the same name."""
    for name in names:
        obj = namespace[name]
        private = callable(obj) and getattr(obj, "__module__", "").startswith(f"{module}._")
        # A Literal alias (JobState) says it comes from "typing", wherever it was made.
        if private or typing.get_origin(obj) is typing.Literal:
            obj.__module__ = module
