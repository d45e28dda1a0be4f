"""Telemetry never fails a job or an enqueue: an error inside it (an SDK's,
a bad attribute) is logged once per process, and the work goes on without
it. And how quickq marks a span failed (the conventions' "recording errors")."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

with contextlib.suppress(ImportError):  # without the quickq[otel] extra, unused
    from opentelemetry import trace as otel_trace

if TYPE_CHECKING:
    from opentelemetry.trace import Span

from ._names import ERROR_TYPE

log = logging.getLogger("quickq")
P = ParamSpec("P")
R = TypeVar("R")


def guarded(default: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run the method; on an error, log it (once) and return *default*. For
    calls made once per enqueue or per batch: the per-attempt ones catch
    inline (:func:`recording_failed`), without a wrapper call."""

    def wrap(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except Exception:
                recording_failed()
                return default  # type: ignore[no-any-return]

        return call

    return wrap


def recording_failed() -> None:
    """Log the error being handled, the first time in this process."""
    if not _failed:
        _failed.append(True)
        log.exception("quickq: OpenTelemetry recording failed (logged once)")


_failed: list[bool] = []


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: its fully qualified class name (the bare
    name for builtins)."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def record_error(span: Span, exc: BaseException | None, kind: str, message: str = "") -> None:
    """Mark *span* failed: the exception recorded (when there is one), status
    ERROR, ``error.type`` *kind*."""
    if exc is not None:
        span.record_exception(exc)
    span.set_status(otel_trace.StatusCode.ERROR, message or None)
    span.set_attribute(ERROR_TYPE, kind)
