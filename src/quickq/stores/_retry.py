"""The retry loop behind ``Store.transact`` for stores without a native one."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .._exceptions import CommitUnknownResultError, RetryableError
from ._protocol import RetryState, Transaction

T = TypeVar("T")


async def run_transaction(
    create: Callable[[], Transaction],
    fn: Callable[[Transaction], Awaitable[T]],
    *,
    retry_limit: int | None = None,
    max_backoff: float = 1.0,
) -> T:
    """Run *fn* in fresh transactions from *create* until one commits.

    Retryable errors back off like FoundationDB's ``on_error``: jittered, doubling
    from 1 ms up to *max_backoff*. After *retry_limit* retries the last error is
    raised, as :class:`~quickq.CommitUnknownResultError` if any commit's result
    was unknown (it may have landed: "not done" would be a lie). Anything else
    (cancellation included) cancels the transaction and propagates. Every
    transaction gets the call's :class:`RetryState` as ``retry_state``.
    """
    backoff = 0.001
    retries = 0
    state = RetryState()
    unknown: CommitUnknownResultError | None = None
    while True:
        tr = create()
        state.rewind()
        # An attribute test, not isinstance() on the runtime Protocol: that
        # check cost tens of microseconds per transaction on the hot path.
        if hasattr(tr, "retry_state"):
            tr.retry_state = state
        try:
            result = await fn(tr)
            await tr.commit()
            return result
        except RetryableError as exc:
            tr.cancel()
            if isinstance(exc, CommitUnknownResultError):
                unknown = exc
            if retry_limit is not None and retries >= retry_limit:
                if unknown is not None and unknown is not exc:
                    raise CommitUnknownResultError(
                        f"an earlier commit's result is unknown, then: {exc}"
                    ) from exc
                raise
        except BaseException:
            tr.cancel()
            raise
        retries += 1
        await anyio.sleep(random.uniform(0, backoff))
        backoff = min(backoff * 2, max_backoff)
