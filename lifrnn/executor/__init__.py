"""Running stored jobs: :func:`execute_job` (the one function every executor calls) and the
in-process worker pool of the embedded default.

``execute_job`` takes a job id: it marks the queued job running (a guarded update, so only one
worker gets it), fetches the job's stored inputs from the object store into a scratch folder,
runs its spec through :func:`lifrnn.jobs.run_job` with progress going to the row and its events,
cancellation read from the row (``cancelling``) and checkpoints kept in the object store, keeps a
heartbeat, ingests the artifacts into the content-addressed store, records the network it made,
and writes the final status (settling the jobs that wait for it). The Celery task, the in-process
pool and ``lifrnn run`` all call it, so a worker needs nothing but the database and the object
store: any machine can run any job and resume any checkpoint.

The package, by concept (each name is re-exported here, so ``lifrnn.executor.X`` keeps working):

- ``execute``: :func:`execute_job` and its stages (the claim, the heartbeat, the inputs fetched),
  and :func:`worker_name`;
- ``waits``: a job's object-store operations through an outage (:class:`ObjectStoreWait`,
  :class:`WaitingCheckpoints`);
- ``progress``: the progress sink of a running job (its row, its bounded history, its curves);
- ``finish``: the end of a run (``_finish``): artifacts ingested, the network recorded, the final
  status written, in one transaction;
- ``leftovers``: :func:`collect_leftovers`, what dead jobs left behind;
- ``pool``: :class:`WorkerPool`, the threads of the embedded default.

Imports: :mod:`lifrnn.jobs`, :mod:`lifrnn.store`, :mod:`lifrnn.specs` and lifrnn's other modules
below them (no ``api/`` or ``worker/`` imports: those call this package).
"""

from lifrnn.executor.execute import execute_job, worker_name
from lifrnn.executor.finish import MEDIA_TYPES, StoredFile, media_type
from lifrnn.executor.finish import _finish as _finish
from lifrnn.executor.leftovers import SCRATCH_GRACE_SECONDS, collect_leftovers
from lifrnn.executor.pool import IDLE_BACKOFF, IDLE_PAUSE_SECONDS, WorkerPool
from lifrnn.executor.progress import SERIES_LEVEL
from lifrnn.executor.progress import _ProgressWriter as _ProgressWriter
from lifrnn.executor.waits import (
    ObjectStoreWait,
    ObjectStoreWaitError,
    WaitingCheckpoints,
    WaitInterruptedError,
)

__all__ = [
    "IDLE_BACKOFF",
    "IDLE_PAUSE_SECONDS",
    "MEDIA_TYPES",
    "SCRATCH_GRACE_SECONDS",
    "SERIES_LEVEL",
    "ObjectStoreWait",
    "ObjectStoreWaitError",
    "StoredFile",
    "WaitInterruptedError",
    "WaitingCheckpoints",
    "WorkerPool",
    "collect_leftovers",
    "execute_job",
    "media_type",
    "worker_name",
]
