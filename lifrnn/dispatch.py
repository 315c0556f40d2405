"""The dispatcher of the distributed mode: from the store's queue to Celery messages.

The database is the record of every job; a message on the broker only says "run job X" and may be
lost (a broker restart without persistence) or delivered twice (late acknowledgement). The
dispatcher, a thread in the API process, makes both harmless:

- it sends each queued job to the ``gpu`` or ``cpu`` queue (from the spec's ``device``), and sends
  it again when it is still queued ``redispatch_seconds`` later (a lost message); workers claim a
  job with a guarded update, so a duplicate does nothing;
- fair use of the shared queue: a user never has more jobs running or sent than their
  ``max_running``, and among queued jobs those of users with fewer running jobs go first, then
  the oldest;
- worker loss: running jobs whose heartbeat is stale go back to the queue (up to
  ``max_attempts``, then failed with the reason) and are sent again;
- cancellation: a job still ``cancelling`` ``cancel_grace_seconds`` after the request is
  terminated (its task revoked with SIGKILL) and marked cancelled. The task's id is read from the
  job's row (the worker records it when it claims the job), so an API restarted since, or
  another API replica, terminates it just the same.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from lifrnn.store import Store
from lifrnn.store.jobs import release_waiting, requeue_stale, transition
from lifrnn.store.models import Job, JobEvent, User, utcnow
from lifrnn.store.status import ACTIVE

if TYPE_CHECKING:
    from celery import Celery

    from lifrnn.settings import Settings

logger = logging.getLogger(__name__)

Send = Callable[[str, str, str], None]
"""``send(job_id, queue, task_id)`` puts one message on the broker."""
Revoke = Callable[[list[str]], None]
"""``revoke(task_ids)`` terminates those tasks wherever they run."""


def queue_of(spec: dict[str, object]) -> str:
    """Broker queue of a spec: ``gpu`` for ``device: "cuda"``, else ``cpu``."""
    return "gpu" if spec.get("device") == "cuda" else "cpu"


class Dispatcher:
    """Sends queued jobs to Celery fairly, re-sends lost ones, reaps stale and stuck jobs."""

    def __init__(self, store: Store, send: Send, revoke: Revoke | None = None) -> None:
        self.store = store
        self.size = 0  # no in-process workers: Celery workers run the jobs
        self.send = send
        self.revoke = revoke
        self.sent: dict[str, float] = {}
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Run :meth:`tick` in a background thread until :meth:`stop`."""
        self.thread = threading.Thread(target=self._loop, daemon=True, name="lifrnn-dispatcher")
        self.thread.start()

    def notify(self) -> None:
        """A job was queued: dispatch now rather than at the next poll."""
        self.wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread."""
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _loop(self) -> None:
        settings = self.store.settings
        while not self.stopping.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("dispatcher tick failed")
            self.wake.wait(settings.poll_seconds)
            self.wake.clear()

    def tick(self) -> int:
        """One round: reap stale and stuck jobs, then send what may run. Returns jobs sent."""
        settings = self.store.settings
        with self.store.session() as session:
            moved = requeue_stale(session, settings.stale_after_seconds, settings.max_attempts)
            release_waiting(session)
            if moved:
                logger.warning("re-queued or closed stale jobs: %s", ", ".join(moved))
                for job_id in moved:
                    self.sent.pop(job_id, None)
        self._terminate_stuck()
        return self._send_queued()

    def _terminate_stuck(self) -> None:
        grace = self.store.settings.cancel_grace_seconds
        limit = utcnow() - timedelta(seconds=grace)
        with self.store.session() as session:
            requested = (
                select(JobEvent.job_id, func.max(JobEvent.at).label("at"))
                .where(JobEvent.type == "status", JobEvent.status == "cancelling")
                .group_by(JobEvent.job_id)
                .subquery()
            )
            stuck = session.execute(
                select(Job.id, Job.task_id)
                .join(requested, requested.c.job_id == Job.id)
                .where(Job.status == "cancelling", requested.c.at < limit)
            ).all()
            for job_id, task_id in stuck:
                if self.revoke is not None and task_id:
                    self.revoke([task_id])
                if transition(
                    session,
                    job_id,
                    "cancelled",
                    note=f"terminated: did not stop within the {grace:g} s grace period",
                    finished_at=utcnow(),
                ):
                    logger.warning("job %s terminated after the cancellation grace period", job_id)
            session.commit()

    def _send_queued(self) -> int:
        settings = self.store.settings
        now = time.monotonic()
        with self.store.session() as session:
            limits = dict(session.execute(select(User.id, User.max_running)).all())
            # One statement, one snapshot: running counts and the queue must agree, or a job
            # claimed between two queries would be counted neither as running nor as sent.
            rows = session.execute(
                select(Job.id, Job.owner_id, Job.spec, Job.status)
                .where(Job.status.in_(["queued", *sorted(ACTIVE)]))
                .order_by(Job.queued_at, Job.id)
            ).all()
        running: dict[int, int] = {}
        for _, owner, _, state in rows:
            if state in ACTIVE:
                running[owner] = running.get(owner, 0) + 1
        queued = [(job_id, owner, spec) for job_id, owner, spec, state in rows if state == "queued"]
        queued_ids = {job_id for job_id, _, _ in queued}
        for job_id in list(self.sent):
            if job_id not in queued_ids:
                del self.sent[job_id]
        pending: dict[int, int] = {}
        for job_id, owner, _ in queued:
            if job_id in self.sent and now - self.sent[job_id] < settings.redispatch_seconds:
                pending[owner] = pending.get(owner, 0) + 1
        # Users with fewer running jobs first, then the oldest job (the sort is stable).
        order = sorted(queued, key=lambda row: running.get(row[1], 0))
        count = 0
        for job_id, owner, spec in order:
            fresh = job_id in self.sent and now - self.sent[job_id] < settings.redispatch_seconds
            if fresh:
                continue
            cap = limits.get(owner)
            cap = settings.default_max_running if cap is None else cap
            if running.get(owner, 0) + pending.get(owner, 0) >= cap:
                continue
            self.send(job_id, queue_of(spec), f"{job_id}.{uuid.uuid4().hex[:12]}")
            self.sent[job_id] = now
            pending[owner] = pending.get(owner, 0) + 1
            count += 1
        return count


EXECUTE_TASK = "lifrnn.execute"
"""The Celery task that runs one job by id (``lifrnn.worker.tasks``)."""
QUEUES = ("gpu", "cpu")
"""Queues by the spec's device: jobs with ``device: "cuda"`` go to ``gpu``, the rest to ``cpu``."""


def make_celery(settings: Settings, include: Sequence[str] = ()) -> Celery:
    """A Celery app for ``settings.broker_url``: the same for the dispatcher that sends and the
    workers that run (``include``: the modules holding the tasks, named, so that this layer
    imports none of them).

    JSON serialisation only; late acknowledgement with one message prefetched per process; a
    Redis visibility timeout longer than the longest job; no result backend (the API reads the
    store).
    """
    from celery import Celery

    app = Celery(
        "lifrnn",
        broker=settings.broker_url or "redis://127.0.0.1:6379/0",
        include=list(include),
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        task_default_queue="cpu",
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def celery_dispatcher(store: Store) -> Dispatcher:
    """A dispatcher that sends :data:`EXECUTE_TASK` messages through a Celery app of the
    store's settings."""
    celery_app = make_celery(store.settings)

    def send(job_id: str, queue: str, task_id: str) -> None:
        celery_app.send_task(EXECUTE_TASK, args=[job_id], queue=queue, task_id=task_id)

    def revoke(task_ids: list[str]) -> None:
        celery_app.control.revoke(task_ids, terminate=True, signal="SIGKILL")

    return Dispatcher(store, send, revoke)
