"""Job events: what happened to each attempt, for logs, metrics and traces.

Pass ``on_event=`` to ``open_consumer`` to receive them. The callback runs in
the consumer's task, synchronously: keep it quick (append to a list, bump a
metric, send to a channel with ``send_nowait``). Exceptions it raises are
logged and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import attrs

EventKind = Literal["started", "completed", "retried", "dead", "released", "lost"]


@attrs.frozen
class JobEvent:
    """One step of one attempt.

    ``started`` carries *wait*: seconds from when the job became due to when
    it started (enqueue-to-start latency for a job due at once). The other
    kinds are the attempt's outcome and carry *duration*; ``completed``
    carries the handler's *result*, ``retried`` and ``dead`` the *error*.
    ``lost`` means the lease was lost and the outcome was not recorded.
    """

    kind: EventKind
    queue_id: str
    job_id: str
    topic: str
    attempt: int
    time: float
    """Wall-clock time of the event (seconds since the epoch)."""
    wait: float | None = None
    duration: float | None = None
    result: Any = None
    error: str | None = None


EventHook = Callable[[JobEvent], None]
