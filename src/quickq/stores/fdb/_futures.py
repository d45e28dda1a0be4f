"""Awaiting a FoundationDB future from trio or asyncio, without blocking a thread.

A FoundationDB future becomes ready on the client's network thread, which then
calls the callbacks registered with ``future.on_ready``. :func:`wait_ready`
registers one callback that hands a wake-up to the waiting task's event loop
through that loop's own thread-safe, non-blocking entry point: trio's
``TrioToken.run_sync_soon`` and asyncio's ``loop.call_soon_threadsafe``. That is
one thread hand-off per await, and the network thread never waits for the event
loop (``anyio.from_thread.run_sync`` would make it wait, and would need a
portal). The wake-up itself runs on the loop's thread, where it can safely
check whether anyone still waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio.lowlevel
import sniffio
import trio

__all__ = ["wait_ready"]


async def wait_ready(future: Any) -> None:
    """Return once *future* is ready, so its value or error reads without blocking.

    Always a checkpoint. Cancelling the waiting task cancels *future*
    (FoundationDB then fails it with ``operation_cancelled``). A ready callback
    that arrives after the waiter was cancelled, or after its event loop
    finished, does nothing.
    """
    if future.is_ready():
        await anyio.lowlevel.checkpoint()
        return
    library = sniffio.current_async_library()
    if library == "trio":
        await _wait_trio(future)
    elif library == "asyncio":
        await _wait_asyncio(future)
    else:  # pragma: no cover
        raise RuntimeError(f"quickq's FoundationDB store runs on trio or asyncio, not {library}")


async def _wait_trio(future: Any) -> None:
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()
    waiting = True  # read and written only on the trio thread

    def wake() -> None:  # on the trio thread
        nonlocal waiting
        if waiting:
            waiting = False
            trio.lowlevel.reschedule(task)

    def on_ready(_: object) -> None:  # on the network thread
        with contextlib.suppress(trio.RunFinishedError):  # the run is over: nobody waits
            token.run_sync_soon(wake)

    def abort(_: object) -> trio.lowlevel.Abort:  # on the trio thread
        nonlocal waiting
        waiting = False
        future.cancel()
        return trio.lowlevel.Abort.SUCCEEDED

    future.on_ready(on_ready)
    await trio.lowlevel.wait_task_rescheduled(abort)


async def _wait_asyncio(future: Any) -> None:
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake() -> None:  # on the loop's thread
        if not waiter.done():
            waiter.set_result(None)

    def on_ready(_: object) -> None:  # on the network thread
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(wake)

    future.on_ready(on_ready)
    try:
        await waiter
    except BaseException:
        future.cancel()
        raise
