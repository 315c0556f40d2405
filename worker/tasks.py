"""Celery tasks: thin wrappers that run a stored job by id.

Idempotent by job id: :func:`lifrnn.executor.execute_job` claims the job with a guarded
``queued -> running`` update, so a redelivered message for a job that already ran (or is running
elsewhere) does nothing.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from celery import Task
from celery.signals import worker_ready

from lifrnn.dispatch import EXECUTE_TASK
from lifrnn.executor import collect_leftovers, execute_job, worker_name
from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.worker.celery_app import celery_app

logger = logging.getLogger(__name__)


@cache
def _store() -> Store:
    """One store (engine, connection pool) per worker process."""
    return Store(Settings())


@worker_ready.connect
def _clean_up_after_dead_jobs(**_: Any) -> None:
    """A worker starting (again) removes what jobs that died on this machine left behind."""
    store = Store(Settings())  # not the cached one: this runs before the pool forks
    try:
        collect_leftovers(store)
    except Exception:
        logger.exception("could not remove the leftovers of dead jobs")
    finally:
        store.dispose()


@celery_app.task(name=EXECUTE_TASK, acks_late=True, bind=True)
def execute(self: Task, job_id: str) -> str:
    """Run job ``job_id``; returns its final status, or ``"skipped"`` if it was not queued (or
    its owner runs as many jobs as allowed: the dispatcher sends it again)."""
    result = execute_job(_store(), job_id, worker=worker_name("celery"), task_id=self.request.id)
    if result is None:
        logger.info("job %s was not queued (already taken or finished): skipped", job_id)
        return "skipped"
    return result.status
