"""OpenTelemetry traces and metrics, when the API is installed (``quickq[otel]``).

A library emits through the providers the application set up, and costs
nothing when it set none. One concept a module:

- ``_setting``: :class:`Telemetry`, the user's setting (which providers,
  create spans or not);
- ``_instruments``: :func:`resolve`, the tracer and instruments of a setting,
  or None when nothing would record (callers test ``is not None`` and do
  nothing else per job);
- ``_context``: the job's creation context as its record stores it, and the
  handler's current span;
- ``_sending``: the producer's spans and metrics (the consumer's are
  ``quickq._consumer._otel``);
- ``_errors``: telemetry never fails a job (an error in it is logged once),
  and how a span is marked failed;
- ``_names``: the semantic conventions' names and quickq's own.
"""

from ._context import attach, carrier_of, decode_context, detach, encode_carrier, inject
from ._errors import _failed as _failed  # the tests reset it
from ._errors import error_type, guarded, record_error, recording_failed
from ._instruments import AVAILABLE, GaugeSource, Instruments, Meters, resolve
from ._names import (
    ACTION,
    ATTEMPT,
    BATCH_COUNT,
    CLIENT_ID,
    DEAD_REASON,
    DESTINATION,
    DURATION_BUCKETS,
    ERROR_TYPE,
    LEASE_LOST,
    MESSAGE_ID,
    OPERATION_NAME,
    OPERATION_TYPE,
    OUTCOME,
    QUEUE_ID,
    SCHEMA_URL,
    SCOPE,
    SNOOZE_DELAY,
    SYSTEM,
    SYSTEM_NAME,
    WAIT_BUCKETS,
)
from ._sending import Sending, start_sending
from ._setting import Telemetry, check_telemetry

__all__ = [
    "SCOPE",
    "SCHEMA_URL",
    "SYSTEM",
    "OPERATION_TYPE",
    "OPERATION_NAME",
    "DESTINATION",
    "MESSAGE_ID",
    "CLIENT_ID",
    "BATCH_COUNT",
    "ERROR_TYPE",
    "QUEUE_ID",
    "ATTEMPT",
    "ACTION",
    "OUTCOME",
    "DEAD_REASON",
    "SNOOZE_DELAY",
    "LEASE_LOST",
    "SYSTEM_NAME",
    "DURATION_BUCKETS",
    "WAIT_BUCKETS",
    "AVAILABLE",
    "GaugeSource",
    "Instruments",
    "Meters",
    "Sending",
    "Telemetry",
    "attach",
    "carrier_of",
    "check_telemetry",
    "decode_context",
    "detach",
    "encode_carrier",
    "error_type",
    "guarded",
    "inject",
    "record_error",
    "recording_failed",
    "resolve",
    "start_sending",
]
