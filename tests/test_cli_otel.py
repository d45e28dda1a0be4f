"""``quickq worker`` under ``opentelemetry-instrument``: an SDK set up from
``OTEL_*`` variables, with no code of the user's, exports the worker's spans,
its metrics and (with ``--store-gauges``) the store-wide gauges."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import quickq

from .test_cli import REPO, _env, stats_of, url, wait_for
from .test_cli_metrics import enqueue

_INSTRUMENT = Path(sys.executable).with_name("opentelemetry-instrument")


@pytest.mark.skipif(
    not _INSTRUMENT.exists() and shutil.which("opentelemetry-instrument") is None,
    reason="opentelemetry-instrument is not installed (the opentelemetry-distro package)",
)
def test_opentelemetry_instrument_exports_a_workers_spans_and_gauges(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    enqueue(path, quickq.NewJob("shop", "ok"), quickq.NewJob("later", "ok", delay=3600))
    env = _env(
        OTEL_SERVICE_NAME="mail-worker",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="200",
    )
    instrument = str(_INSTRUMENT) if _INSTRUMENT.exists() else "opentelemetry-instrument"
    proc = subprocess.Popen(
        [instrument, sys.executable, "-m", "quickq", "worker", "tests.test_cli:jobs",
         "--store", url(path), "--store-gauges"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving" in line, line
        wait_for(lambda: stats_of(path, "shop").pending == 0)
        wait_for(lambda: stats_of(path, "shop").running == 0)
        time.sleep(0.6)  # a few metric exports
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert '"name": "process ok"' in out, out[-2000:]
    assert '"messaging.message.id"' in out
    exported = _metric_names(out)
    assert {"messaging.process.duration", "quickq.job.wait.duration"} <= exported
    assert {"quickq.queue.jobs", "quickq.jobs", "quickq.workers"} <= exported
    assert '"service.name": "mail-worker"' in out


def _metric_names(out: str) -> set[str]:
    """The metric names in the console exporter's JSON documents of *out*."""
    names: set[str] = set()
    decoder = json.JSONDecoder()
    at = 0
    while (start := out.find("{", at)) != -1:
        try:
            document, at = decoder.raw_decode(out, start)
        except json.JSONDecodeError:
            at = start + 1
            continue
        for resource in document.get("resource_metrics", []):
            for scope in resource["scope_metrics"]:
                names.update(metric["name"] for metric in scope["metrics"])
    return names
