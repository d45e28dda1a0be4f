"""Prometheus metrics without a collector: quickq's numbers as Prometheus text.

Needs the ``quickq[prometheus]`` extra (prometheus-client and hypercorn)::

    collector = quickq.prometheus.consumer_collector(consumer)
    app = quickq.prometheus.asgi_app(collector)           # mount it anywhere
    await nursery.start(quickq.prometheus.serve, app, port=9464)   # or serve it

- :func:`consumer_collector`: one consumer's numbers (attempts, outcomes, the
  duration and wait histograms, running against capacity), read in process.
- :func:`store_collector`: the store-wide gauges of ``JobQueue.overview``
  (depth per queue and state, totals, age of the oldest ready job), read
  from counters and index keys, never by scanning jobs, refreshed at most
  once per *refresh* seconds.
- :func:`asgi_app`: an ASGI app serving ``GET /metrics`` from its own registry.
- :func:`serve`: that app on hypercorn's trio server, in the caller's nursery,
  bound to 127.0.0.1 unless told otherwise.

The series are the Prometheus translations of the OpenTelemetry names quickq
emits through ``quickq[otel]`` (docs/observability.md lists both), so one
dashboard reads either path.
"""

from __future__ import annotations

try:
    import hypercorn as _hypercorn
    import prometheus_client as _prometheus_client
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "quickq.prometheus needs the prometheus extra: pip install 'quickq[prometheus]' "
        f"({_missing})"
    ) from _missing

from .._exports import publish_exports as _publish_exports
from ._app import asgi_app as asgi_app
from ._app import serve as serve
from ._collectors import ConsumerCollector as ConsumerCollector
from ._collectors import StoreCollector as StoreCollector
from ._collectors import consumer_collector as consumer_collector
from ._collectors import store_collector as store_collector

del _hypercorn, _prometheus_client

__all__ = [
    "ConsumerCollector",
    "StoreCollector",
    "asgi_app",
    "consumer_collector",
    "serve",
    "store_collector",
]

_publish_exports(globals(), __all__, "quickq.prometheus")
