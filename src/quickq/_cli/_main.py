"""The command tree: the ``quickq`` group, its commands, and the entry point."""

from __future__ import annotations

import click

from ._dead import dead
from ._enqueue import enqueue
from ._errors import main_guard
from ._history import history
from ._inspect import jobs, stats
from ._metrics import metrics
from ._store import check_store_url
from ._worker import worker
from ._workers import workers


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="quickq", prog_name="quickq")
def cli() -> None:
    """quickq: a durable job queue. Run workers, enqueue jobs, inspect queues."""


@click.command()
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="Store for the demo (default: a temporary SQLite file, removed afterwards).",
)
def demo(store_url: str | None) -> None:
    """The coffee shop: tenants, priorities, schedules, retries, a long job and a
    poison one, run by two worker processes sharing one SQLite file."""
    from ._demo import run_demo  # rich's progress display and the demo's jobs: on demand

    if store_url is not None:
        check_store_url(store_url, param_hint="'--store'")
    click.get_current_context().exit(run_demo(store_url))


for _command in (worker, workers, enqueue, stats, jobs, dead, history, metrics, demo):
    cli.add_command(_command)


def main() -> None:
    """The ``quickq`` entry point."""
    main_guard(lambda: cli.main(prog_name="quickq", standalone_mode=False))
