"""The endpoint: an ASGI app over a registry of its own, and hypercorn to serve it.

The app is prometheus_client's (``make_asgi_app``: text or OpenMetrics by the
``Accept`` header) behind a thin wrapper that answers ASGI ``lifespan``
(which prometheus_client's app refuses, and hypercorn sends), serves only
``GET /metrics``, and first lets collectors that read the store refresh
their snapshot, so that ``collect()`` itself never waits on I/O.

:func:`serve` runs hypercorn's trio server in the caller's nursery, not
prometheus_client's ``start_http_server``, which binds every interface
(0.0.0.0) by default and serves from a thread of its own: its collectors
would read the consumer's numbers from another thread than the one changing
them, and metrics would be public unless told otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias, cast

import anyio
import anyio.abc
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_client.registry import Collector

from .._exceptions import InvalidArgumentError
from .._validate import check_int, shown

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application."""

_PATH = "/metrics"


def asgi_app(*collectors: Collector) -> ASGIApp:
    """An ASGI app serving *collectors* as Prometheus text on ``GET /metrics``.

    Each app has a registry of its own (never prometheus_client's global
    one). Other paths answer 404, other methods 405; ``lifespan`` events are
    acknowledged. A collector with an async ``refresh_if_stale()`` (such as
    :func:`store_collector`'s) is awaited before each scrape. Mount it in any
    ASGI server (hypercorn, uvicorn, a Starlette ``Mount``), on trio or
    asyncio, or run it with :func:`serve`.
    """
    for collector in collectors:  # at once, not at each scrape
        if not callable(getattr(collector, "collect", None)):
            raise InvalidArgumentError(
                f"collectors must have a collect() method, as consumer_collector()'s and "
                f"store_collector()'s do (got {shown(collector)})"
            )
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    refreshers = [
        refresh for c in collectors if (refresh := getattr(c, "refresh_if_stale", None)) is not None
    ]
    metrics = make_asgi_app(registry)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            raise ValueError(f"quickq's metrics app serves HTTP, not {kind!r}")
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # mounted under a prefix
        if path != _PATH:
            await _respond(send, 404, b"not found: metrics are at /metrics\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        for refresh in refreshers:
            await refresh()
        await metrics(scope, receive, send)

    return app


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown: the app holds nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def serve(
    app: ASGIApp,
    *,
    port: int,
    host: str = "127.0.0.1",
    task_status: anyio.abc.TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* over HTTP on *host*:*port* until cancelled (trio only).

    ``urls = await nursery.start(serve, app, port=9464)`` returns once the
    socket listens, with the bound addresses (``["http://127.0.0.1:9464"]``;
    port 0 picks a free port, which they show). The default host is the
    loopback interface: give ``host="0.0.0.0"`` (or an address) to let other
    machines scrape. Runs hypercorn's trio server in the caller's nursery,
    with no thread. Its log goes to the ``hypercorn.error`` logger.
    """
    port = check_int(port, "port", 0, 65535)
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.errorlog = logging.getLogger("hypercorn.error")
    config.accesslog = None
    # On trio, anyio's task status is trio's, which hypercorn expects.
    status = cast(trio.TaskStatus[list[str]], task_status)
    await hypercorn_serve(app, config, mode="asgi", task_status=status)  # type: ignore[arg-type]
