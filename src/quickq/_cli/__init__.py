"""The ``quickq`` command line: run workers, enqueue, and look inside queues.

::

    quickq worker myapp.jobs:registry --store sqlite:///jobs.db
    quickq enqueue shop-1 email:send '{"to": "a@example.com"}' --store sqlite:///jobs.db
    quickq stats --store sqlite:///jobs.db
    quickq jobs shop-1 --state running --store sqlite:///jobs.db
    quickq dead list|replay|purge shop-1 [JOB_ID | --all] --store sqlite:///jobs.db
    quickq demo

``--store`` defaults to the ``QUICKQ_STORE`` environment variable. Bad input
ends with one line on stderr and a non-zero exit status (2 for usage errors,
1 for everything else); ``QUICKQ_DEBUG=1`` shows tracebacks. See docs/cli.md.

The package is private: its interface is the command line, not Python names,
and it is built on quickq's public API alone (``quickq``, ``quickq.stores``).
Nothing else in quickq imports it. One module per concept:

- ``_main``: the command group and the entry point (``quickq``, ``python -m quickq``);
- commands: ``_worker`` (with ``_config_options``: its options, made from
  ``quickq.ConsumerConfig``), ``_enqueue``, ``_inspect`` (stats, jobs), ``_dead``;
- ``_listing``: the one path for listings (jobs, dead letters);
- output: ``_format`` (times and text), ``_render`` (rich tables);
- input: ``_params`` (argument types), ``_store`` (``--store``), ``_registry``
  (``MODULE:ATTR``); failure: ``_errors`` (one line, an exit status);
- the demo: ``_demo`` and the coffee shop's jobs, ``_demo_jobs``.
"""

from ._main import cli as cli
from ._main import main as main

__all__ = ["cli", "main"]
