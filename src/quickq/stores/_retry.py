"""The retry loop behind ``Store.transact`` for stores without a native one."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from .._exceptions import RetryableError
from ._protocol import Transaction

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
    raised. Anything else (cancellation included) cancels the transaction and
    propagates with nothing written.
    """
    backoff = 0.001
    retries = 0
    while True:
        tr = create()
        try:
            result = await fn(tr)
            await tr.commit()
            return result
        except RetryableError:
            tr.cancel()
            if retry_limit is not None and retries >= retry_limit:
                raise
        except BaseException:
            tr.cancel()
            raise
        retries += 1
        await anyio.sleep(random.uniform(0, backoff))
        backoff = min(backoff * 2, max_backoff)
