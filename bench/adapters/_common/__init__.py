"""What every adapter shares: ``import _common as c`` in ``bench/adapters/*.py``.

An adapter is a script the harness runs with its system's own Python, as
``python ADAPTER.py PARAMS_JSON``; it runs one scenario once and prints one
result line (:mod:`.protocol`). The pieces, one module each:

- :mod:`.protocol`: the result line, ``Params`` and ``Metrics``, ``NotApplicable``;
- :mod:`.meters`: wall and CPU time of a phase, latency percentiles;
- :mod:`.recorder`: where jobs report their start and end, and the job's body;
- :mod:`.systems`: the base classes an adapter implements, and runners;
- :mod:`.drivers`: scenarios 1-4, 7 and 8, the same code for every system;
- :mod:`.metrics`: a finished run's metrics, per scenario;
- :mod:`.processes`: worker processes, and scenarios 5 (crash) and 6 (long jobs);
- :mod:`.tables`: the scenario tables an adapter hands to :func:`main`;
- :mod:`.script`: :func:`main`, the adapter script's life.

Standard library only, so that it imports in every peer's virtual environment.
"""

from .drivers import a_drain_result as a_drain_result
from .drivers import a_enqueue as a_enqueue
from .drivers import a_fairness as a_fairness
from .drivers import a_latency as a_latency
from .drivers import a_priority as a_priority
from .drivers import a_run_queued as a_run_queued
from .drivers import a_sleep_result as a_sleep_result
from .drivers import chunks as chunks
from .meters import Meter as Meter
from .metrics import drain_metrics as drain_metrics
from .metrics import longjobs_metrics as longjobs_metrics
from .processes import run_crash as run_crash
from .processes import run_longjobs as run_longjobs
from .protocol import Metrics as Metrics
from .protocol import NotApplicable as NotApplicable
from .protocol import Params as Params
from .recorder import RECORDER as RECORDER
from .recorder import ajob_body as ajob_body
from .recorder import job_body as job_body
from .script import main as main
from .systems import AsyncioSystem as AsyncioSystem
from .systems import AsyncSystem as AsyncSystem
from .systems import SyncSystem as SyncSystem
from .systems import WorkerProcess as WorkerProcess
from .systems import asyncio_runner as asyncio_runner
from .systems import blocking as blocking
from .systems import cancel_task as cancel_task
from .systems import leased as leased
from .tables import async_enqueue_all as async_enqueue_all
from .tables import async_scenarios as async_scenarios
from .tables import async_worker as async_worker
from .tables import leased_scenarios as leased_scenarios
from .tables import not_applicable as not_applicable
from .tables import sync_enqueue_all as sync_enqueue_all
from .tables import sync_scenarios as sync_scenarios
from .tables import sync_worker as sync_worker
