"""The in-process worker pool of the embedded default (:class:`WorkerPool`): threads that claim
queued jobs and run them through :func:`~lifrnn.executor.execute.execute_job`, and a watchdog
that re-queues the jobs of workers that stopped beating.
"""

from __future__ import annotations

import logging
import threading
import time

from lifrnn.executor.execute import execute_job, worker_name
from lifrnn.executor.leftovers import collect_leftovers
from lifrnn.store import Store
from lifrnn.store.jobs import next_queued_job_id, release_waiting, requeue_stale

logger = logging.getLogger(__name__)


IDLE_BACKOFF = 8
"""An idle in-process worker's longest pause between looks at the queue, in polls
(``Settings.poll_seconds``); IDLE_PAUSE_SECONDS caps it."""
IDLE_PAUSE_SECONDS = 1.0
"""The longest pause in seconds (never below one poll): the longest wait for a job queued
through another process."""


class WorkerPool:
    """Threads that claim queued jobs from the store and run them (the embedded default)."""

    def __init__(self, store: Store, size: int) -> None:
        self.store = store
        self.size = size
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads and the stale-job watchdog."""
        try:
            collect_leftovers(self.store)
        except Exception:
            logger.exception("could not remove the leftovers of dead jobs")
        for index in range(self.size):
            thread = threading.Thread(
                target=self._work, args=(index,), daemon=True, name=f"lifrnn-worker-{index}"
            )
            thread.start()
            self.threads.append(thread)
        watchdog = threading.Thread(target=self._watch, daemon=True, name="lifrnn-watchdog")
        watchdog.start()
        self.threads.append(watchdog)
        logger.info("worker pool started with %d threads", self.size)

    def notify(self) -> None:
        """Tell idle workers that a job was queued."""
        self.wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop: running jobs are interrupted and go back to the queue."""
        self.stopping.set()
        self.wake.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _watch(self) -> None:
        settings = self.store.settings
        interval = min(settings.heartbeat_seconds, settings.stale_after_seconds / 2)
        while not self.stopping.is_set():
            try:
                with self.store.session() as session:
                    moved = requeue_stale(
                        session, settings.stale_after_seconds, settings.max_attempts
                    )
                    moved += release_waiting(session)
                if moved:
                    logger.warning("re-queued or closed stale jobs: %s", ", ".join(moved))
                    self.wake.set()
            except Exception:
                logger.exception("stale-job check failed")
            self.stopping.wait(interval)

    def _work(self, index: int) -> None:
        name = worker_name(f"thread-{index}")
        settings = self.store.settings
        poll = settings.poll_seconds
        longest = min(poll * IDLE_BACKOFF, max(poll, IDLE_PAUSE_SECONDS))
        pause = poll
        while not self.stopping.is_set():
            try:
                with self.store.session() as session:
                    job_id = next_queued_job_id(session, settings.default_max_running)
                    session.rollback()
                if job_id is None:
                    # Idle: each empty look doubles the pause, up to IDLE_BACKOFF polls, so an
                    # idle server does not query its database ten times a second; a job queued
                    # through this process (notify) or released from waiting wakes it at once.
                    woken = self.wake.wait(pause)
                    self.wake.clear()
                    pause = poll if woken else min(2 * pause, longest)
                    continue
                pause = poll
                execute_job(self.store, job_id, worker=name, shutdown=self.stopping)
            except Exception:
                logger.exception("worker %s: unexpected error", name)
                self.stopping.wait(poll)
