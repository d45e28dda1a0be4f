"""The result protocol between an adapter process and the harness.

An adapter is a script run by the harness with its system's own Python, as
``python ADAPTER.py PARAMS_JSON``. It runs one scenario once and prints exactly
one line starting with :data:`RESULT_PREFIX` followed by a JSON object::

    {"status": "ok", "metrics": {...}}
    {"status": "n/a", "reason": "..."}
    {"status": "error", "reason": "...traceback..."}

Both sides import this module (the harness as ``bench.adapters._common.protocol``),
so the format is defined once. Standard library only: it imports in every
peer's virtual environment.
"""

from __future__ import annotations

import json
import sys
from typing import Any

RESULT_PREFIX = "BENCH-RESULT "

Params = dict[str, Any]
"""A scenario's parameters, as the harness passes them (JSON)."""
Metrics = dict[str, Any]
"""What one run of a scenario measured: numbers, and ``note``-like strings."""


class NotApplicable(Exception):
    """The system cannot run this scenario; the message says why."""


def emit(obj: dict[str, Any]) -> None:
    """Print *obj* as the result line, flushed on its own line."""
    sys.stdout.flush()
    sys.stdout.write(RESULT_PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def read_result(output: str) -> dict[str, Any] | None:
    """The last result line in an adapter's *output*, decoded; None if there is none."""
    result = None
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    return result
