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
"""

from __future__ import annotations

import logging
import math
import mimetypes
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
from pydantic import ValidationError
from sqlalchemy import delete, select

from lifrnn.headers import HeaderError, read_file_header
from lifrnn.jobs import JobContext, run_job
from lifrnn.jobs.base import Checkpoints, JobCancelledError
from lifrnn.private_files import private_dir
from lifrnn.results import JobResult
from lifrnn.settings import Settings
from lifrnn.specs import describe_validation_error, parse_spec
from lifrnn.store import Store
from lifrnn.store.blobs import BlobWriter
from lifrnn.store.cas import checkpoint_prefix
from lifrnn.store.inputs import NETWORK_ARTIFACT
from lifrnn.store.jobs import (
    beat,
    claim_job,
    finite_json,
    next_queued_job_id,
    release_waiting,
    report_progress,
    requeue_stale,
    transition,
)
from lifrnn.store.models import RECIPE_BLOB_NAME, Artifact, Job, JobInput, Network, utcnow
from lifrnn.store.objects import (
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreUnavailableError,
    delete_prefix,
)
from lifrnn.store.search import record_metrics
from lifrnn.store.series import Point
from lifrnn.store.status import ACTIVE

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

MEDIA_TYPES = {
    ".safetensors": "application/octet-stream",
    ".png": "image/png",
    ".json": "application/json",
    ".npy": "application/octet-stream",
}


def media_type(name: str) -> str:
    """Media type of an artifact by its file name."""
    suffix = Path(name).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


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


class ObjectStoreWaitError(RuntimeError):
    """The object store stayed unreachable longer than ``LIFRNN_OBJECT_STORE_WAIT_SECONDS``."""


class WaitInterruptedError(JobCancelledError):
    """The job was cancelled or taken, or its worker shuts down, while it waited for the
    object store (a runner reports it as cancelled, as any cancellation)."""


class ObjectStoreWait:
    """Runs a job's object-store operations again while the store cannot be reached.

    Pauses of 1, 2, 4, ... seconds (each at most ``object_store_retry_max_seconds``), for at most
    ``object_store_wait_seconds`` in all, then :class:`ObjectStoreWaitError`. Each pause is said
    through ``say`` ("waiting for the object store to <what>: <error>; retry in N s"): the
    job's events show what it waits for. ``stop`` is polled during the pauses; True ends the wait
    with :class:`WaitInterruptedError`. The job's heartbeat thread beats meanwhile, so a waiting
    job is not taken for a dead one.
    """

    first_pause_seconds = 1.0

    def __init__(
        self,
        settings: Settings,
        say: Callable[[str], None],
        stop: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = settings.object_store_wait_seconds
        self.longest_pause = settings.object_store_retry_max_seconds
        self.say = say
        self.stop = stop
        self.clock = clock

    def run(self, what: str, action: Callable[[], _T]) -> _T:
        """``action()``, tried again while it raises :class:`ObjectStoreUnavailableError`.

        ``what``: the operation in words, completing "waiting for the object store to ...".
        """
        started = self.clock()
        pause = self.first_pause_seconds
        while True:
            try:
                return action()
            except ObjectStoreUnavailableError as error:
                waited = self.clock() - started
                left = self.limit - waited
                if left <= 0:
                    raise ObjectStoreWaitError(
                        f"could not {what}: the object store stayed unreachable for "
                        f"{waited:.0f} s (LIFRNN_OBJECT_STORE_WAIT_SECONDS): {error.reason}"
                    ) from error
                pause = min(pause, self.longest_pause, left)
                logger.warning("waiting %.3g s for the object store to %s: %s", pause, what, error)
                self.say(
                    f"waiting for the object store to {what}: {error.reason}; "
                    f"retry in {pause:.3g} s"
                )
                self._pause(pause)
                pause *= 2

    def _pause(self, seconds: float) -> None:
        deadline = self.clock() + seconds
        while (left := deadline - self.clock()) > 0:
            if self.stop():
                raise WaitInterruptedError(
                    "stopped while waiting for the object store (cancelled, or the worker "
                    "shuts down)"
                )
            time.sleep(min(left, 0.2))


class WaitingCheckpoints(Checkpoints):
    """A running job's checkpoints through an object-store outage: a save that cannot reach
    the store is logged and said once, and the run goes on (the next save tries again, no
    sooner than ``min_seconds`` later); a load waits for the store (:class:`ObjectStoreWait`),
    since starting over would throw away a run's progress."""

    def __init__(
        self, objects: ObjectStore, prefix: str, min_seconds: float, waiting: ObjectStoreWait
    ) -> None:
        super().__init__(objects, prefix, min_seconds)
        self.waiting = waiting
        self.failed_at: dict[str, float] = {}

    def save(
        self,
        name: str,
        tensors: Mapping[str, Any],
        step: int,
        metadata: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Save as :meth:`Checkpoints.save` does; False (not saved) while the store is away."""
        failed = self.failed_at.get(name)
        if (
            failed is not None
            and not force
            and time.monotonic() - failed < max(self.min_seconds, 1.0)
        ):
            return False
        try:
            saved = super().save(name, tensors, step, metadata, force)
        except ObjectStoreUnavailableError as error:
            logger.warning(
                "checkpoint %s%s not saved at step %d: %s", self.prefix, name, step, error
            )
            if failed is None:
                self.waiting.say(
                    f"checkpoint {name!r} not saved at step {step}: the object store cannot be "
                    f"reached ({error.reason}); the run goes on"
                )
            self.failed_at[name] = time.monotonic()  # the next try waits from here
            return False
        self.failed_at.pop(name, None)
        return saved

    def load(self, name: str) -> tuple[dict[str, np.ndarray], int, dict[str, str]] | None:
        """The checkpoint as :meth:`Checkpoints.load` reads it, waiting for the store."""
        load = super().load
        return self.waiting.run(f"read checkpoint {name!r}", lambda: load(name))


def _finish_when_stored(
    waiting: ObjectStoreWait,
    finish: Callable[[JobResult, dict[str, str]], bool],
    result: JobResult,
    figures: dict[str, str],
) -> bool:
    """``finish(result, figures)`` (:func:`_finish`), run again while the object store cannot
    take the result's files.

    Each try is whole: its claims are released and its transaction rolled back before the
    pause, so nothing waits inside a database transaction. When the wait ends without the store
    (:class:`ObjectStoreWaitError`) the job fails saying so; when it is interrupted it is
    recorded as cancelled (re-queued when its worker shuts down). Either way without files.
    """
    try:
        return waiting.run("store the job's results", lambda: finish(result, figures))
    except WaitInterruptedError as error:
        return finish(JobResult(kind=result.kind, status="cancelled", error=str(error)), {})
    except ObjectStoreWaitError as error:
        failed = JobResult(
            kind=result.kind, status="failed", error=str(error), metrics=result.metrics
        )
        return finish(failed, {})


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


SERIES_LEVEL = 1000
"""Points of a curve stored at each stride: every step for the first 1,000, then every 2nd step
for the next 1,000, every 4th, ...: an hour of SOC iterations (~150,000) keeps ~8,000 points."""


class _ProgressWriter:
    """Progress sink: to the job row at most every progress interval, and to its history (a
    bounded one): every report of the first ``event_dense_seconds``, then one per
    ``event_interval_seconds``, and always the first and the last (fraction 1) and milestones.
    A one-hour job keeps under 500 progress events.

    Each write carries the run's elapsed seconds and the estimated time left, extrapolated
    from the fraction gained since this run started (runners report fractions that track
    time), and the curve points recorded since the last write (see :data:`SERIES_LEVEL`).
    """

    def __init__(
        self,
        store: Store,
        job_id: str,
        worker: str,
        forward: Callable[[float, str], None] | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        settings = store.settings
        self.store = store
        self.job_id = job_id
        self.worker = worker
        self.forward = forward
        self.clock = clock
        self.interval = settings.progress_interval_seconds
        self.dense = settings.event_dense_seconds
        self.sparse = settings.event_interval_seconds
        self.started = clock()
        self.last = float("-inf")
        self.last_event = float("-inf")
        self.first_fraction: float | None = None
        self.latest = (0.0, "")
        self.points: list[Point] = []
        self.stride: dict[str, int] = {}
        self.kept: dict[str, int] = {}
        self.unsaved: dict[str, Point] = {}

    def __call__(self, fraction: float, message: str) -> None:
        if self.forward is not None:
            self.forward(fraction, message)
        if self.first_fraction is None:
            self.first_fraction = fraction
        self.latest = (fraction, message)
        now = self.clock()
        if now - self.last < self.interval and fraction < 1.0:
            return
        self.last = now
        keep = (
            fraction >= 1.0
            or now - self.started < self.dense
            or now - self.last_event >= self.sparse
        )
        self._write(fraction, message, keep)

    def milestone(self, fraction: float, message: str) -> None:
        """A report written whatever the interval (e.g. "resuming from the checkpoint")."""
        if self.forward is not None:
            self.forward(fraction, message)
        self.latest = (fraction, message)
        self.last = self.clock()
        self._write(fraction, message, True)

    def point(self, series: str, step: int, value: float) -> None:
        """Record point ``step`` of curve ``series``; kept when the step falls on its stride."""
        if not math.isfinite(value):
            return
        stride = self.stride.get(series, 1)
        if step % stride:
            self.unsaved[series] = (series, step, value)
            return
        self.unsaved.pop(series, None)
        self.points.append((series, step, value))
        self.kept[series] = kept = self.kept.get(series, 0) + 1
        if kept % SERIES_LEVEL == 0:
            self.stride[series] = stride * 2

    def close(self) -> None:
        """Write the points not yet written, and the last point of each curve."""
        self.points.extend(self.unsaved.values())
        self.unsaved.clear()
        if self.points:
            self._write(*self.latest, False)

    def timing(self, fraction: float) -> tuple[float, float | None]:
        """Elapsed seconds of this run and the estimated seconds left (None: too early)."""
        elapsed = self.clock() - self.started
        if fraction >= 1.0:
            return elapsed, 0.0
        gained = fraction - (self.first_fraction or 0.0)
        if gained <= 0 or elapsed < 1.0:
            return elapsed, None
        return elapsed, elapsed * (1.0 - fraction) / gained

    def _write(self, fraction: float, message: str, event: bool) -> None:
        if event:
            self.last_event = self.clock()
        elapsed, eta = self.timing(fraction)
        points, self.points = self.points, []
        try:
            with self.store.session() as session:
                report_progress(
                    session,
                    self.job_id,
                    self.worker,
                    fraction,
                    message[:2000],
                    event=event,
                    elapsed_seconds=round(elapsed, 3),
                    eta_seconds=None if eta is None else round(eta, 3),
                    points=points,
                )
        except Exception:  # progress is advisory; losing one report must not fail the job
            logger.exception("progress of job %s not recorded", self.job_id)


def _finish(
    store: Store,
    job_id: str,
    owner_id: int,
    parent_network_id: str | None,
    worker: str,
    result: JobResult,
    figures: dict[str, str],
    shutdown: threading.Event | None,
) -> bool:
    """Ingest artifacts, record the network and set the final status, in one transaction.

    ``figures``: figures not drawn yet (artifact name -> recipe file): their recipes are stored
    and their rows say so (drawn when first downloaded).

    Returns True when the job reached its final status here (False: it went back to the queue,
    or another worker or a cancellation took it meanwhile).
    """
    written: list[str] = []
    with store.writing() as blobs:
        finished = _record(
            store, blobs, job_id, owner_id, parent_network_id, worker, result, figures, shutdown
        )
        if not finished:
            written = list(blobs.keys)
    if written:  # stored for a result that was dropped: named by nothing unless by others
        store.collect_blobs(written)
    return finished


def _store_blobs(
    blobs: BlobWriter, result: JobResult, figures: dict[str, str]
) -> tuple[list[StoredFile], dict[str, str]]:
    """Put the result's files and the figures' recipes into the content-addressed store, each
    claimed until the rows naming them commit; returns the files and the recipes' digests."""
    stored: list[StoredFile] = []
    for name, location in result.artifacts.items():
        path = Path(location)
        if path.is_file():
            sha256, size = blobs.put_file(path, name)
            stored.append(StoredFile(name, path, sha256, size))
    recipes = {
        name: blobs.put_file(Path(location), RECIPE_BLOB_NAME)[0]
        for name, location in figures.items()
    }
    return stored, recipes


class StoredFile(NamedTuple):
    """A result file whose bytes are in the content-addressed store."""

    name: str
    path: Path
    sha256: str
    size: int


def _record(
    store: Store,
    blobs: BlobWriter,
    job_id: str,
    owner_id: int,
    parent_network_id: str | None,
    worker: str,
    result: JobResult,
    figures: dict[str, str],
    shutdown: threading.Event | None,
) -> bool:
    """:func:`_finish`'s transaction; the blobs are written (and claimed) before it writes."""
    ours = [Job.worker == worker]
    with store.session() as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id, *ours))
        if status not in ACTIVE:
            logger.warning(
                "job %s is no longer held by %s (%s); result dropped", job_id, worker, status
            )
            return False
        if (
            result.status == "cancelled"
            and status == "running"
            and shutdown is not None
            and shutdown.is_set()
        ):
            transition(
                session,
                job_id,
                "queued",
                note=f"interrupted: {worker} shut down",
                expect={"running"},
                where=ours,
                worker=None,
                task_id=None,
                heartbeat_at=None,
                expected_end_at=None,
                progress=0.0,
                message="",
            )
            session.commit()
            return False
        stored, recipes = _store_blobs(blobs, result, figures)
        session.execute(delete(Network).where(Network.job_id == job_id))
        session.execute(delete(Artifact).where(Artifact.job_id == job_id))
        network_artifact = None
        for name, path, sha256, size in stored:
            try:
                header = read_file_header(path)
            except HeaderError:
                header = None
            artifact = Artifact(
                job_id=job_id,
                owner_id=owner_id,
                name=name,
                media_type=media_type(name),
                size=size,
                sha256=sha256,
                format=header.format if header else Path(name).suffix.lstrip(".").lower(),
                header=header.as_json() if header else None,
            )
            session.add(artifact)
            if name == NETWORK_ARTIFACT:
                network_artifact = (artifact, path)
        for name, recipe in recipes.items():
            session.add(
                Artifact(
                    job_id=job_id,
                    owner_id=owner_id,
                    name=name,
                    media_type=media_type(name),
                    format=Path(name).suffix.lstrip(".").lower(),
                    recipe_sha256=recipe,
                )
            )
        session.flush()
        metrics = finite_json(result.metrics)
        if network_artifact is not None and result.status == "succeeded":
            artifact, path = network_artifact
            session.add(_network_row(result, artifact, path, parent_network_id, metrics))
        moved = transition(
            session,
            job_id,
            result.status,
            note=result.error or "",
            where=ours,
            finished_at=utcnow(),
            error=result.error,
            error_detail=result.error_detail,
            metrics=metrics,
            progress=1.0 if result.status == "succeeded" else Job.progress,
        )
        if not moved:  # re-queued or taken meanwhile: its result must not be recorded
            session.rollback()
            logger.warning("job %s changed hands before it finished; result dropped", job_id)
            return False
        record_metrics(session, job_id, metrics)
        session.commit()
    logger.info("job %s %s", job_id, result.status)
    return True


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


def _network_row(
    result: JobResult,
    artifact: Artifact,
    path: Path,
    parent_network_id: str | None,
    metrics: dict[str, object],
) -> Network:
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as handle:
        metadata = handle.metadata() or {}
        n = int(handle.get_slice("W").get_shape()[0]) if "W" in handle.keys() else 0  # noqa: SIM118
    return Network(
        owner_id=artifact.owner_id,
        job_id=artifact.job_id,
        artifact_id=artifact.id,
        parent_network_id=parent_network_id,
        kind=result.kind,
        n=n,
        method=metadata.get("method"),
        metrics=metrics,
    )


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
