"""An adapter script's life: run one scenario (or serve as a worker), print its
one result line, and end the process."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Mapping

from .protocol import NotApplicable, Params, emit
from .recorder import RECORDER
from .tables import Scenario, Worker


def main(handlers: Mapping[str, Scenario], worker: Worker) -> None:
    """Run the scenario named in argv[1]'s JSON and print the one result line.

    ``params["role"] == "worker"`` runs ``worker(params)`` instead: a consumer
    process that records completions to ``params["record_file"]`` until killed
    (the crash scenario starts and kills these).
    """
    # Peers run silently: the result line is the output that counts.
    logging.disable(logging.CRITICAL)
    p: Params = json.loads(sys.argv[1])
    if p.get("role") == "worker":
        RECORDER.to_file(p["record_file"], starts=bool(p.get("record_starts")))
        worker(p)
        return
    handler = handlers.get(p["scenario"])
    try:
        if handler is None:
            raise NotApplicable(f"scenario {p['scenario']!r} is not implemented for this system")
        metrics = handler(p)
    except NotApplicable as exc:
        emit({"status": "n/a", "reason": str(exc)})
    except BaseException:
        emit({"status": "error", "reason": traceback.format_exc()[-4000:]})
        sys.stdout.flush()
        os._exit(1)
    else:
        emit({"status": "ok", "metrics": metrics})
    sys.stdout.flush()
    # Peers leave non-daemon threads and pools behind; do not wait for them.
    os._exit(0)
