"""The benchmark's job registry for ``quickq worker quickq_cli_jobs:jobs``.

The worker processes of the scaling scenario import this module (with
bench/adapters on PYTHONPATH); each completion is appended to the file named
by ``QUICKQ_BENCH_RECORD``, as in the crash scenario's worker processes.
"""

from __future__ import annotations

import os

import _common as c
from quickq_adapter import make_registry
from quickq_processes import RECORD_ENV

jobs = make_registry()
if os.environ.get(RECORD_ENV):
    c.RECORDER.to_file(os.environ[RECORD_ENV])
