"""Uploaded files: received in chunks, judged by their header first, stored by content.

:class:`UploadReceiver` takes the bytes of a ``.safetensors``, ``.npy`` or ``.nwb`` file as they
arrive. As soon as the header is complete it is checked (format, dtypes, shapes within the limits
of :mod:`lifrnn.headers`, the declared size within ``max_bytes``, or ``max_recording_bytes`` for
an NWB recording, whose HDF5 superblock declares its size) and the upload is refused before the
rest is read; the body goes to a temporary file, hashed on the way. A complete recording is then
judged whole (:func:`lifrnn.nwb.inspect_nwb`: an NWB file with units, spike times and trials, and
nothing pointing outside it), and its summary becomes its header. :func:`store_upload` puts the
file into the content-addressed store and records it as an artifact without a job. The same path
serves ``POST /files`` and ``lifrnn run``'s local files, so both are judged alike.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lifrnn.headers import (
    RECORDING_FORMATS,
    FileHeader,
    HeaderError,
    TooLargeError,
    format_of,
    header_length,
)
from lifrnn.headers import read_header as parse_header
from lifrnn.private_files import private_dir
from lifrnn.store.cas import blob_key, file_sha256
from lifrnn.store.inputs import jobs_reading
from lifrnn.store.jobs import lock_user
from lifrnn.store.models import Artifact, Job, JobInput, Network, User
from lifrnn.store.status import ACTIVE, PENDING, TERMINAL

if TYPE_CHECKING:
    from lifrnn.store import Store

MEDIA_TYPE = "application/octet-stream"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


class ByteQuotaExceededError(Exception):
    """Storing this would take the user over their byte quota (429)."""


class FileInUseError(Exception):
    """The file is a job's artifact, or jobs that have not finished read it (409)."""


@dataclass(frozen=True)
class ReceivedFile:
    """A complete upload in a temporary file: where, its digest, size and header."""

    path: Path
    name: str
    sha256: str
    size: int
    header: FileHeader


def clean_name(name: str) -> str:
    """A file name safe to show and to keep: its last path part, odd characters replaced.

    Raises :class:`HeaderError` unless it ends in ``.safetensors``, ``.npy`` or ``.nwb``.
    """
    base = _UNSAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip("._")[:200]
    if format_of(base) is None:
        raise HeaderError(
            f"file name {name!r}: lifrnn stores .safetensors and .npy files only (never pickle), "
            "and recordings as .nwb"
        )
    return base


class UploadReceiver:
    """Receives one upload's bytes in order (:meth:`feed`), then :meth:`finish`.

    ``max_bytes`` limits tensor files, ``max_recording_bytes`` NWB recordings (None: the same).
    Raises :class:`HeaderError` (422) or :class:`TooLargeError` (413) as soon as what arrived
    shows the file is refused; the temporary file is then removed.
    """

    def __init__(
        self,
        name: str,
        max_bytes: int,
        folder: Path | None = None,
        *,
        max_recording_bytes: int | None = None,
    ) -> None:
        self.name = clean_name(name)
        self.format = format_of(self.name) or ""
        recording = self.format in RECORDING_FORMATS and max_recording_bytes is not None
        self.max_bytes: int = (max_recording_bytes or max_bytes) if recording else max_bytes
        self._limit_text = (
            f"recordings may have at most {self.max_bytes} (LIFRNN_MAX_RECORDING_BYTES)"
            if recording
            else f"uploads may have at most {self.max_bytes} (LIFRNN_MAX_UPLOAD_BYTES)"
        )
        self.header: FileHeader | None = None
        self._prefix = b""
        self._digest = hashlib.sha256()
        self._size = 0
        if folder is not None:
            private_dir(folder)
        handle, temporary = tempfile.mkstemp(prefix=".upload-", dir=folder)
        self.path = Path(temporary)
        self._stream = os.fdopen(handle, "wb")

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes."""
        if not chunk:
            return
        try:
            self._size += len(chunk)
            if self._size > self.max_bytes:
                raise TooLargeError(f"upload larger than {self.max_bytes} bytes")
            if self.header is None:
                self._prefix += chunk
                needed = header_length(self.format, self._prefix)
                if needed is not None and len(self._prefix) >= needed:
                    self.header = parse_header(self.format, self._prefix[:needed])
                    if self.header.size > self.max_bytes:
                        raise TooLargeError(
                            f"{self.name} declares {self.header.size} bytes; {self._limit_text}"
                        )
                    self._prefix = b""
            if self.header is not None and self._size > self.header.size:
                raise HeaderError(
                    f"{self.name} is longer than its header declares ({self.header.size} bytes)"
                )
            self._digest.update(chunk)
            self._stream.write(chunk)
        except BaseException:
            self.discard()
            raise

    def finish(self) -> ReceivedFile:
        """The complete file; raises :class:`HeaderError` when it is shorter than declared, or
        a recording that :func:`lifrnn.nwb.inspect_nwb` refuses (the message says why)."""
        try:
            if self.header is None:
                raise HeaderError(f"{self.name} ends before its header does ({self._size} bytes)")
            if self._size != self.header.size:
                raise HeaderError(
                    f"{self.name} has {self._size} bytes; its header declares {self.header.size}"
                )
            self._stream.close()
            if self.format in RECORDING_FORMATS:
                self.header = replace(self.header, summary=self._inspect())
        except BaseException:
            self.discard()
            raise
        return ReceivedFile(self.path, self.name, self._digest.hexdigest(), self._size, self.header)

    def _inspect(self) -> dict[str, object]:
        # imported here: pynwb is loaded only by a process that receives a recording
        from lifrnn.nwb import RecordingFileError, RecordingTooLargeError, inspect_nwb

        # no dataset it reads may declare more bytes than the recording limit (a fill-value bomb)
        try:
            return inspect_nwb(self.path, name=self.name, max_dataset_bytes=self.max_bytes)
        except RecordingTooLargeError as error:
            raise TooLargeError(str(error)) from None
        except RecordingFileError as error:
            raise HeaderError(str(error)) from None

    def discard(self) -> None:
        """Remove the temporary file."""
        self._stream.close()
        self.path.unlink(missing_ok=True)


def receive_file(
    path: Path,
    max_bytes: int,
    folder: Path | None = None,
    *,
    max_recording_bytes: int | None = None,
) -> ReceivedFile:
    """Read a local file through :class:`UploadReceiver` (the same checks as an upload)."""
    receiver = UploadReceiver(path.name, max_bytes, folder, max_recording_bytes=max_recording_bytes)
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            receiver.feed(chunk)
    return receiver.finish()


def receive_chunks(
    chunks: Iterable[bytes],
    name: str,
    max_bytes: int,
    folder: Path | None = None,
    *,
    max_recording_bytes: int | None = None,
) -> ReceivedFile:
    """Receive an upload from an iterable of byte chunks."""
    receiver = UploadReceiver(name, max_bytes, folder, max_recording_bytes=max_recording_bytes)
    for chunk in chunks:
        receiver.feed(chunk)
    return receiver.finish()


def used_bytes(session: Session, owner_id: int) -> int:
    """Bytes of the user's files and artifacts (each counted where it is named)."""
    total = session.scalar(select(func.sum(Artifact.size)).where(Artifact.owner_id == owner_id))
    return int(total or 0)


def byte_quota(owner: User, default_max_bytes: int) -> int:
    """The user's byte quota: their own, else the deployment's default."""
    return owner.max_bytes if owner.max_bytes is not None else default_max_bytes


def check_byte_quota(session: Session, owner: User, default_max_bytes: int, adding: int) -> None:
    """Raise :class:`ByteQuotaExceededError` unless ``adding`` more bytes fit the user's quota."""
    limit = byte_quota(owner, default_max_bytes)
    used = used_bytes(session, owner.id)
    if used + adding > limit:
        raise ByteQuotaExceededError(
            f"byte quota exceeded: {used} bytes stored, {adding} more would pass the limit of "
            f"{limit}; delete files or jobs you no longer need"
        )


def store_upload(
    session: Session,
    store: Store,
    owner: User,
    received: ReceivedFile,
    default_max_bytes: int,
) -> Artifact:
    """Store a received file for ``owner`` as an uploaded file (an artifact without a job).

    The bytes go into the content-addressed store first (once per content), claimed until the
    row has committed (:meth:`Store.writing`), so that a concurrent deletion of a file with the
    same bytes cannot remove them; then, under the user's lock, the byte quota is checked and the
    row committed, so concurrent uploads cannot pass the quota together. Raises
    :class:`ByteQuotaExceededError` (the bytes are removed again unless another file holds them).
    The temporary file is removed either way. ``session`` must not have written anything yet.
    """
    blob = blob_key(received.sha256, received.name)
    with store.writing() as blobs:
        try:
            sha256, size = blobs.put_file(received.path, received.name, sha256=received.sha256)
        finally:
            received.path.unlink(missing_ok=True)
        lock_user(session, owner.id)
        try:
            check_byte_quota(session, owner, default_max_bytes, size)
        except ByteQuotaExceededError as error:
            session.rollback()
            refused = error
        else:
            artifact = Artifact(
                job_id=None,
                owner_id=owner.id,
                name=received.name,
                media_type=MEDIA_TYPE,
                size=size,
                sha256=sha256,
                format=received.header.format,
                header=received.header.as_json(),
            )
            session.add(artifact)
            session.commit()
            return artifact
    store.collect_blobs([blob])
    raise refused


def delete_upload(session: Session, store: Store, artifact: Artifact) -> None:
    """Delete an uploaded file; its bytes go once nothing else names them. Commits.

    Raises :class:`FileInUseError` for a job's artifact (delete the job instead) and while a
    waiting, queued or running job reads it. Finished jobs that read it keep their record of it
    in their ``spec.json`` (name, SHA-256), not the link.
    """
    if artifact.job_id is not None:
        raise FileInUseError(
            f"file {artifact.id} is an artifact of job {artifact.job_id}: delete the job instead"
        )
    readers = jobs_reading(session, artifact.id, ACTIVE | PENDING)
    if readers:
        raise FileInUseError(
            f"file {artifact.id} is read by jobs that have not finished: {', '.join(readers)}; "
            "cancel them or wait"
        )
    blob, artifact_id = artifact.blob_key, artifact.id
    finished = select(Job.id).where(Job.status.in_(sorted(TERMINAL)))
    session.execute(
        update(JobInput)
        .where(JobInput.artifact_id == artifact_id, JobInput.job_id.in_(finished))
        .values(artifact_id=None)
        .execution_options(synchronize_session=False)
    )
    session.delete(artifact)
    try:
        session.commit()
    except IntegrityError:  # a job naming it was submitted meanwhile
        session.rollback()
        raise FileInUseError(f"file {artifact_id} is read by a job submitted just now") from None
    store.collect_blobs([blob])


def keep_local_file(
    session: Session,
    store: Store,
    owner: User,
    path: Path,
    *,
    network: bool,
    max_upload_bytes: int,
    default_max_bytes: int,
    folder: Path | None = None,
) -> str:
    """The id under which ``owner``'s store keeps the local file ``path`` (``lifrnn run``).

    A network file the store made itself (same bytes) answers its network's id, so lineage is
    kept; a file stored before answers that file's id; anything else is stored like an upload,
    with the same checks.
    """
    digest = file_sha256(path)
    if network:
        known = session.scalar(
            select(Network.id)
            .join(Artifact, Artifact.id == Network.artifact_id)
            .where(Network.owner_id == owner.id, Artifact.sha256 == digest)
            .order_by(Network.created_at.desc())
            .limit(1)
        )
        if known is not None:
            return known
    stored = session.scalar(
        select(Artifact.id)
        .where(
            Artifact.owner_id == owner.id,
            Artifact.sha256 == digest,
            Artifact.format == (format_of(path.name) or ""),
        )
        .order_by(Artifact.created_at.desc())
        .limit(1)
    )
    if stored is not None:
        return stored
    received = receive_file(path, max_upload_bytes, folder)
    return store_upload(session, store, owner, received, default_max_bytes).id
