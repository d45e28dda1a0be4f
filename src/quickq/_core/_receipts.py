"""Receipts: how an operation recognises its own earlier commit.

A commit whose result comes back unknown may have happened; the retry loop
runs the body again, and the body must not do twice what it did. Where the
data itself cannot tell (a job enqueued and already finished, a job
completed and deleted, a control call that removed what it acted on), the
operation leaves a receipt keyed by a token fixed outside the retry loop,
in a bucket of the minute it ran. Receipts are kept RECEIPT_KEEP_MS, far
longer than any retry loop, then cleared in bulk by :func:`forget_receipts`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from ..stores._protocol import Transaction
from ._keys import Layout

RECEIPT_BUCKET_MS: Final = 60_000
RECEIPT_KEEP_MS: Final = 15 * 60_000
"""Receipts outlive any retry loop of the operation that wrote them."""
_DONE: Final = "done:"
"""Completion receipts are keyed by the completing lease id, after this prefix."""
_ONCE: Final = "once:"
"""Receipts of control calls (cancel, replay, purge), keyed by the call's token."""


def enqueue_receipt(layout: Layout, token: str, now: int) -> bytes:
    """The key of the receipt of the enqueue call *token* run at *now*."""
    return layout.receipt(now // RECEIPT_BUCKET_MS, token)


def completion_receipt(layout: Layout, lease_id: str, now: int) -> bytes:
    """The key of the receipt of the completion of lease *lease_id* at *now*."""
    return layout.receipt(now // RECEIPT_BUCKET_MS, _DONE + lease_id)


async def completed_recently(tr: Transaction, layout: Layout, lease_id: str, now: int) -> bool:
    """Whether lease *lease_id* completed its job this minute or the last (a
    re-run comes within seconds of its commit)."""
    bucket = now // RECEIPT_BUCKET_MS
    for b in (bucket, bucket - 1):
        if await tr.get(layout.receipt(b, _DONE + lease_id)) is not None:
            return True
    return False


async def run_once(
    tr: Transaction,
    layout: Layout,
    token: str,
    now: int,
    op: Callable[[], Awaitable[bytes | None]],
) -> bytes | None:
    """Run a control *op* at most once per call *token* (fixed, with *now*,
    outside the retry loop): *op* returns what it did, recorded in a receipt,
    or None for nothing. A re-run after commit-unknown-result finds the
    receipt and returns what the committed run did, instead of reporting the
    job gone."""
    key = layout.receipt(now // RECEIPT_BUCKET_MS, _ONCE + token)
    earlier = await tr.get(key)
    if earlier is not None:
        return earlier
    done = await op()
    if done is not None:
        tr.set(key, done)
    return done


def forget_receipts(tr: Transaction, layout: Layout, now: int) -> None:
    """Drop receipts older than RECEIPT_KEEP_MS (a blind range clear)."""
    tr.clear_range(*layout.receipts_before((now - RECEIPT_KEEP_MS) // RECEIPT_BUCKET_MS))
