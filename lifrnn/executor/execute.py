"""Run one stored job to its final status: :func:`execute_job` and its stages.

The claim (unless the caller already holds the job), the stored inputs fetched into a scratch
folder, the heartbeat that notices a cancel request or a lost claim, the run through
:func:`lifrnn.jobs.run_job` and the end (:mod:`lifrnn.executor.finish`); :func:`worker_name`
is how a job row names who runs it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from lifrnn.executor.finish import _finish, _finish_when_stored
from lifrnn.executor.progress import _ProgressWriter
from lifrnn.executor.waits import (
    ObjectStoreWait,
    ObjectStoreWaitError,
    WaitingCheckpoints,
    WaitInterruptedError,
)
from lifrnn.jobs import JobContext, run_job
from lifrnn.private_files import private_dir
from lifrnn.results import JobResult
from lifrnn.specs import describe_validation_error, parse_spec
from lifrnn.store import Store
from lifrnn.store.cas import checkpoint_prefix
from lifrnn.store.jobs import beat, claim_job
from lifrnn.store.models import Artifact, Job, JobInput
from lifrnn.store.objects import ObjectNotFoundError, ObjectStoreUnavailableError, delete_prefix

logger = logging.getLogger(__name__)


def worker_name(label: str = "worker") -> str:
    """``host:pid:label``, how a job row names who runs it."""
    return f"{socket.gethostname()}:{os.getpid()}:{label}"


class _Heartbeat:
    """Beats for a running job in the background and notices a cancel request or a lost claim."""

    def __init__(self, store: Store, job_id: str, worker: str, stop: threading.Event | None):
        self.store = store
        self.job_id = job_id
        self.worker = worker
        self.shutdown = stop
        self.status: str | None = "running"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        interval = self.store.settings.heartbeat_seconds
        while not self._done.wait(interval):
            try:
                with self.store.session() as session:
                    self.status = beat(session, self.job_id, self.worker)
            except Exception:  # a database hiccup must not kill the job; the next beat retries
                logger.exception("heartbeat of job %s failed", self.job_id)

    def cancel_requested(self) -> bool:
        """True when the job was asked to stop, taken from us, or the worker shuts down."""
        if self.shutdown is not None and self.shutdown.is_set():
            return True
        return self.status != "running"


def execute_job(
    store: Store,
    job_id: str,
    *,
    worker: str,
    out_dir: Path | None = None,
    on_progress: Callable[[float, str], None] | None = None,
    shutdown: threading.Event | None = None,
    claimed: bool = False,
    task_id: str | None = None,
    defer_figures: bool = True,
) -> JobResult | None:
    """Claim the queued job ``job_id`` and run it to its final status; None if not claimed.

    ``claimed``: the job is already running under ``worker`` (see ``submit_job(worker=...)``);
    otherwise it is claimed only while its owner runs fewer jobs than their ``max_running``.
    ``task_id``: the Celery task running it (recorded on the row).

    Its stored inputs are fetched into a scratch folder (removed afterwards); artifacts are
    written into ``out_dir`` (default that scratch folder), then ingested into the store.
    ``shutdown`` set while the job runs stops it and puts it back in the queue for another
    worker, which resumes from the job's checkpoints in the object store.
    ``defer_figures``: store figures as recipes, drawn when first downloaded (the service;
    see :mod:`lifrnn.figure_recipes`); False draws them now (``lifrnn run``).
    """
    with store.session() as session:
        if not claimed and not claim_job(
            session, job_id, worker, store.settings.default_max_running, task_id
        ):
            return None
        job = session.get(Job, job_id)
        assert job is not None
        owner_id, spec_json, kind = job.owner_id, job.spec, job.kind
        parent_network_id = job.parent_network_id
        inputs = session.execute(
            select(JobInput.field, JobInput.network_id, Artifact)
            .join(Artifact, Artifact.id == JobInput.artifact_id)
            .where(JobInput.job_id == job_id)
        ).all()
    logger.info("job %s (%s) started by %s", job_id, kind, worker)

    settings = store.settings
    private_dir(settings.scratch)
    scratch = Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=settings.scratch))
    figures: dict[str, str] = {}
    try:
        with _Heartbeat(store, job_id, worker, shutdown) as heartbeat:
            progress = _ProgressWriter(store, job_id, worker, on_progress)
            waiting = ObjectStoreWait(
                settings,
                lambda text: progress.milestone(progress.latest[0], text),
                heartbeat.cancel_requested,
            )
            try:
                spec = parse_spec(spec_json)
                objects = waiting.run("answer", lambda: store.objects)  # S3: its bucket exists
                local_inputs, provenance = waiting.run(
                    "fetch the job's inputs",
                    lambda: _fetch_inputs(store, inputs, scratch / "inputs"),
                )
            except ValidationError as error:  # a kind or field this version no longer knows
                result = JobResult(
                    kind=kind,
                    status="failed",
                    error=f"invalid spec: {describe_validation_error(error)}",
                )
            except ObjectNotFoundError as error:
                result = JobResult(kind=kind, status="failed", error=str(error.args[0]))
            except ObjectStoreWaitError as error:
                result = JobResult(kind=kind, status="failed", error=str(error))
            except WaitInterruptedError as error:
                result = JobResult(kind=kind, status="cancelled", error=str(error))
            else:
                context = JobContext(
                    out_dir=out_dir or scratch / "out",
                    progress=progress,
                    cancel_requested=heartbeat.cancel_requested,
                    inputs=local_inputs,
                    checkpoints=WaitingCheckpoints(
                        objects,
                        checkpoint_prefix(job_id),
                        settings.checkpoint_seconds,
                        waiting,
                    ),
                    provenance=provenance,
                    milestones=progress.milestone,
                    series=progress.point,
                    defer_figures=defer_figures,
                    figures=figures,
                )
                try:
                    result = run_job(spec, context)
                finally:
                    progress.close()

            def finish(outcome: JobResult, pending: dict[str, str]) -> bool:
                return _finish(
                    store, job_id, owner_id, parent_network_id, worker, outcome, pending, shutdown
                )

            finished = _finish_when_stored(waiting, finish, result, figures)
        if finished:  # the job is over: nothing to resume
            try:
                delete_prefix(store.objects, checkpoint_prefix(job_id))
            except ObjectStoreUnavailableError as error:
                logger.warning(
                    "checkpoints of job %s left for later (collect_leftovers): %s", job_id, error
                )
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fetch_inputs(
    store: Store, rows: Any, folder: Path
) -> tuple[dict[str, Path], dict[str, dict[str, Any]]]:
    """Copy each stored input to ``folder``; returns (local paths, provenance) by field."""
    paths: dict[str, Path] = {}
    provenance: dict[str, dict[str, Any]] = {}
    for field_name, network_id, artifact in rows:
        target = folder / f"{field_name}{Path(artifact.name).suffix}"
        try:
            store.artifacts.fetch(artifact.blob_key, target)
        except ObjectNotFoundError:
            raise ObjectNotFoundError(
                f"{field_name}: the stored bytes of file {artifact.id} ({artifact.name}) are "
                "missing from the object store"
            ) from None
        paths[field_name] = target
        provenance[field_name] = {
            "file": artifact.id,
            "name": artifact.name,
            "sha256": artifact.sha256,
            "network": network_id,
            "job": artifact.job_id,
        }
    return paths, provenance
