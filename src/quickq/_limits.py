"""Every limit and default of the queue, in one place.

The store's own limits (key, value and transaction sizes, FoundationDB's size
accounting) are :class:`quickq.stores.Limits`; the largest payload follows
from them and from the record format (``quickq._queue.MAX_PAYLOAD_BYTES``).
"""

from __future__ import annotations

from typing import Final

# -- jobs ---------------------------------------------------------------------

DEFAULT_PRIORITY: Final = 100
"""A job's priority when neither the enqueue nor its topic names one (lower runs first)."""
MIN_PRIORITY: Final = -(2**31)
MAX_PRIORITY: Final = 2**31 - 1
DEFAULT_MAX_RETRIES: Final = 3
"""Retries after the first attempt, unless the enqueue or the topic says otherwise."""
MAX_RETRIES_LIMIT: Final = 10_000
MAX_TOPIC_CHARS: Final = 200
MAX_ID_CHARS: Final = 256
"""The longest queue id or job id."""
MAX_DELAY_SECONDS: Final = 10 * 365 * 86_400
"""The longest delay, snooze, backoff or timeout: ten years."""

# -- records ------------------------------------------------------------------

ERROR_BYTES: Final = 4_000
"""Room every record keeps for its last error (JSON-encoded, UTF-8)."""
MAX_ERROR_CHARS: Final = 4_000
"""A handler's error text is cut to this many characters before it is stored."""
TRACE_BYTES: Final = 256
"""Room every record keeps for its trace context (the W3C ``traceparent`` in
26 bytes; a carrier with more, such as ``tracestate`` or baggage, up to this;
a longer one keeps only its ``traceparent``)."""

# -- listings and batches -----------------------------------------------------

MAX_LIST: Final = 1_000_000
"""The most rows one listing (jobs, dead letters, queues) returns."""
DEFAULT_LIST: Final = 100
"""The rows a listing of jobs or dead letters returns when no limit is given."""
LEASE_BYTES: Final = 1_000_000
"""The payload bytes one lease batch may carry (FoundationDB reads stay small)."""
PROMOTE_PER_LEASED: Final = 4
"""A lease batch first promotes up to this many due items per item it may lease..."""
PROMOTE_MIN: Final = 64
"""...and at least this many, so that small batches still drain expired leases."""
DEAD_LETTER_BATCH: Final = 500
"""Dead letters replayed or purged per transaction by ``replay_all``/``purge_all``."""

# -- consumers ----------------------------------------------------------------

MAX_CONSUMER_SECONDS: Final = 86_400.0
"""The longest lease, interval or grace period a consumer takes (a day)."""
MAX_HISTORY_SECONDS: Final = 90 * 86_400.0
"""The longest a consumer keeps per-queue history (``history_keep``): 90 days."""
STORE_BACKOFF_MIN: Final = 0.05
"""The first pause after a store failure (scan, settle, watch); it doubles."""
STORE_BACKOFF_MAX: Final = 5.0
"""The longest pause after a store failure."""
