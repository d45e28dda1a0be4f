"""A stand-in thread-based system for the test suite: no peer, no server.

A priority queue in memory and a pool of threads, run through the same
thread-based path of ``_common`` as Huey and Dramatiq (``SyncSystem``,
``Blocking``, ``sync_scenarios``), so that the tests exercise that path
offline. It is not a system under test: the harness does not list it.
"""

from __future__ import annotations

import itertools
import queue
import threading

import _common as c

P = c.Params
Args = tuple[int, float, float, str]


class Stub(c.SyncSystem):
    def __init__(self, p: P) -> None:
        self.q: queue.PriorityQueue[tuple[int, int, Args]] = queue.PriorityQueue()
        self.seq = itertools.count()  # FIFO among equal priorities
        self.stopping = threading.Event()

    def enqueue(self, job: int, sleep_s: float = 0.0, t_sched: float = 0.0, tag: str = "") -> None:
        self.enqueue_prio(job, sleep_s, t_sched, tag, 0)

    def enqueue_batch(self, jobs: list[int]) -> None:
        for j in jobs:
            self.enqueue(j)

    def enqueue_prio(self, job: int, sleep_s: float, t_sched: float, tag: str, prio: int) -> None:
        self.q.put((prio, next(self.seq), (job, sleep_s, t_sched, tag)))

    def start_worker(self, concurrency: int) -> None:
        for _ in range(concurrency):
            threading.Thread(target=self._work, daemon=True).start()

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                _, _, args = self.q.get(timeout=0.01)
            except queue.Empty:
                continue
            c.job_body(*args)

    def stop_worker(self) -> None:
        self.stopping.set()


if __name__ == "__main__":
    c.main(
        {
            **c.sync_scenarios(Stub),
            # A smaller number runs first.
            "priority": lambda p: c.blocking(c.a_priority, Stub(p), p, 0, 9),
        },
        c.sync_worker(Stub),
    )
