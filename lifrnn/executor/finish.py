"""The end of a run: the result's files ingested into the content-addressed store, the network
it made recorded and the final status written, in one transaction (:func:`_finish`), run again
while the object store cannot take the files (:func:`_finish_when_stored`).
"""

from __future__ import annotations

import logging
import mimetypes
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import delete, select

from lifrnn.executor.waits import ObjectStoreWait, ObjectStoreWaitError, WaitInterruptedError
from lifrnn.headers import RECORDING_FORMATS, FileHeader, HeaderError, read_file_header
from lifrnn.results import JobResult
from lifrnn.store import Store
from lifrnn.store.blobs import BlobWriter
from lifrnn.store.inputs import NETWORK_ARTIFACT
from lifrnn.store.jobs import finite_json, requeue, transition
from lifrnn.store.models import RECIPE_BLOB_NAME, Artifact, Job, Network, utcnow
from lifrnn.store.search import record_metrics
from lifrnn.store.status import ACTIVE

logger = logging.getLogger(__name__)


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
            requeue(session, job_id, f"interrupted: {worker} shut down", where=ours)
            session.commit()
            return False
        stored, recipes = _store_blobs(blobs, result, figures)
        session.execute(delete(Network).where(Network.job_id == job_id))
        session.execute(delete(Artifact).where(Artifact.job_id == job_id))
        network_artifact = None
        for name, path, sha256, size in stored:
            header = _artifact_header(path, name)
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


def _artifact_header(path: Path, name: str) -> FileHeader | None:
    """What an artifact declares; a recording (``spikes.nwb`` of a ``simulate_spiking`` job) with
    its summary (:func:`lifrnn.nwb.inspect_nwb`), as an upload has, so that a ``fit_data`` spec
    can name it by id."""
    try:
        header = read_file_header(path)
    except HeaderError:
        return None
    if header is not None and header.format in RECORDING_FORMATS:
        from lifrnn.nwb import RecordingFileError, inspect_nwb  # pynwb: only for a recording

        try:
            header = replace(header, summary=inspect_nwb(path, name=name))
        except RecordingFileError as error:
            logger.warning("artifact %s: not a readable recording (%s)", name, error)
    return header
