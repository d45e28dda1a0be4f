"""The names quickq records under: its instrumentation scope, the messaging
semantic conventions' attributes (v1.44.0, whose messaging part is still
"development"), quickq's own under ``messaging.quickq``, and the histograms'
advised buckets. quickq keeps its own constants rather than depend on the
conventions' incubating package; docs/observability.md lists them all."""

from __future__ import annotations

from typing import Final

SCOPE: Final = "quickq"
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"

# -- attribute names ----------------------------------------------------------------

SYSTEM: Final = "messaging.system"
OPERATION_TYPE: Final = "messaging.operation.type"
OPERATION_NAME: Final = "messaging.operation.name"
DESTINATION: Final = "messaging.destination.name"
MESSAGE_ID: Final = "messaging.message.id"
CLIENT_ID: Final = "messaging.client.id"
BATCH_COUNT: Final = "messaging.batch.message_count"
ERROR_TYPE: Final = "error.type"
QUEUE_ID: Final = "messaging.quickq.queue.id"
ATTEMPT: Final = "messaging.quickq.job.attempt"
ACTION: Final = "messaging.quickq.job.action"
OUTCOME: Final = "messaging.quickq.job.outcome"
DEAD_REASON: Final = "messaging.quickq.dead.reason"
SNOOZE_DELAY: Final = "messaging.quickq.snooze.delay"
LEASE_LOST: Final = "messaging.quickq.lease.lost"
SYSTEM_NAME: Final = "quickq"

DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
"""The conventions' advice for ``messaging.*.duration`` (seconds)."""
WAIT_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
)  # fmt: skip
"""Enqueue-to-start waits (seconds): from a busy queue's milliseconds to an hour's backlog."""
