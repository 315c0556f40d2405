"""What dead jobs leave behind: scratch folders on this machine and checkpoints in the object
store of jobs that no longer run (:func:`collect_leftovers`, at a worker's start).
"""

from __future__ import annotations

import logging
import shutil
import time

from sqlalchemy import select

from lifrnn.store import Store
from lifrnn.store.cas import checkpoint_prefix
from lifrnn.store.models import Job
from lifrnn.store.objects import delete_prefix

logger = logging.getLogger(__name__)


SCRATCH_GRACE_SECONDS = 60.0


def collect_leftovers(store: Store) -> int:
    """Remove what dead jobs left: scratch folders on this machine and checkpoints in the
    object store of jobs that are no longer running or queued. Returns how many.

    The checkpoints are listed before the jobs' statuses are read: a checkpoint listed was
    written by a job that existed then, so one that is not live when read afterwards has
    finished (or was deleted), never one that started meanwhile.
    """
    owners = {key.split("/")[1] for key in store.objects.iter_keys("checkpoints/")}
    with store.session() as session:
        live = set(
            session.scalars(
                select(Job.id).where(Job.status.in_(["queued", "running", "cancelling"]))
            )
        )
    removed = 0
    scratch = store.settings.scratch
    settled = time.time() - SCRATCH_GRACE_SECONDS  # a folder younger than this may be starting
    if scratch.is_dir():
        for folder in scratch.iterdir():
            if (
                folder.is_dir()
                and len(folder.name) > 36
                and folder.name[:36] not in live
                and folder.stat().st_mtime < settled
            ):
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    for job_id in owners - live:
        if delete_prefix(store.objects, checkpoint_prefix(job_id)):
            removed += 1
    if removed:
        logger.info("removed %d leftovers of finished or dead jobs", removed)
    return removed
