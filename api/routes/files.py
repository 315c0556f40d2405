"""``/files``: upload tensor files (``.safetensors``, ``.npy``) and recordings (``.nwb``), list,
read, download, delete.

An upload's body is the file itself (``Content-Type: application/octet-stream``, its name in
``?name=W.npy``). Its header is judged as soon as it has arrived (format, dtypes, shapes, declared
size; an NWB file's HDF5 superblock declares its size), so a file over the limits is refused
before the rest is read and nothing is kept. A complete NWB recording is then judged whole
(units with spike times, a trials table, nothing pointing outside the file) and its summary kept
as its header, against which a spec's fields are checked at submit. Files are referred to by id
in specs (``initial_weights``, ``movements.targets_file``, ``network``); the artifacts of your
jobs are files too and answer ``GET /files/{id}`` alike.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from lifrnn.api.deps import (
    CurrentUser,
    OwnedFile,
    PageDep,
    SessionDep,
    StoreDep,
    not_found_response,
)
from lifrnn.api.routes.artifacts import content_response, drawn
from lifrnn.api.schemas import FileList, FileOut, problem, required_body
from lifrnn.headers import HeaderError, TooLargeError
from lifrnn.store import Artifact, Store, User
from lifrnn.store.uploads import (
    ByteQuotaExceededError,
    FileInUseError,
    UploadReceiver,
    byte_quota,
    delete_upload,
    store_upload,
    used_bytes,
)

router = APIRouter(prefix="/files", tags=["files"])

NOT_FOUND = not_found_response("file")


def file_out(artifact: Artifact) -> FileOut:
    """The wire form of a stored file."""
    tensors = (artifact.header or {}).get("tensors", {})
    only = next(iter(tensors.values()))["shape"] if len(tensors) == 1 else None
    recording = artifact.header if artifact.format == "nwb" else None
    return FileOut.model_validate(artifact).model_copy(
        update={
            "tensors": tensors,
            "shape": only,
            "recording": recording,
            "url": f"/files/{artifact.id}/content",
        }
    )


def _check_room(store: Store, user: User, declared: int) -> None:
    with store.session() as session:
        used = used_bytes(session, user.id)
    limit = byte_quota(user, store.settings.default_max_bytes)
    if used + declared > limit:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"byte quota exceeded: {used} bytes stored, {declared} more would pass the limit of "
            f"{limit}; delete files or jobs you no longer need",
        )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FileOut,
    responses={
        413: problem(
            "larger than LIFRNN_MAX_UPLOAD_BYTES (LIFRNN_MAX_RECORDING_BYTES for "
            "a .nwb recording) or the limits on shapes"
        ),
        415: problem("body is not application/octet-stream"),
        422: problem(
            "not a valid .safetensors or .npy file, or not an NWB recording "
            "lifrnn can read (the detail lists what is missing)"
        ),
        429: problem("over your byte quota"),
    },
    openapi_extra=required_body("application/octet-stream", {"type": "string", "format": "binary"}),
)
async def upload(
    request: Request,
    store: StoreDep,
    user: CurrentUser,
    name: Annotated[
        str,
        Query(
            min_length=1,
            max_length=255,
            description="file name: *.safetensors or *.npy, or *.nwb for a recording",
        ),
    ],
) -> FileOut:
    """Upload a ``.safetensors`` or ``.npy`` file (never pickle), or an NWB recording
    (``.nwb``); refer to it by its id."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/octet-stream":
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the file's bytes as application/octet-stream, not {media or 'no type'!r}",
        )
    settings = store.settings
    try:
        declared = max(0, int(request.headers.get("content-length") or 0))
    except ValueError:
        declared = 0  # chunked, or nonsense: the receiver counts what really arrives
    await run_in_threadpool(_check_room, store, user, declared)
    try:
        receiver = UploadReceiver(
            name,
            settings.max_upload_bytes,
            settings.scratch / "uploads",
            max_recording_bytes=settings.max_recording_bytes,
        )
        async for chunk in request.stream():
            receiver.feed(chunk)
        received = await run_in_threadpool(receiver.finish)  # a recording is read whole
    except TooLargeError as error:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"file: {error}") from None
    except HeaderError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"file: {error}") from None

    def keep() -> FileOut:
        with store.session() as session:
            owner = session.get(User, user.id)
            assert owner is not None
            artifact = store_upload(session, store, owner, received, settings.default_max_bytes)
            return file_out(artifact)

    try:
        stored = await run_in_threadpool(keep)
    except ByteQuotaExceededError as error:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(error)) from None
    return stored


@router.get("", response_model=FileList)
def list_(session: SessionDep, user: CurrentUser, page: PageDep) -> FileList:
    """Your uploaded files, newest first, and the bytes you store in all (quota); ``has_more``
    says whether more follow this page, and with ``count=true`` ``total`` counts them all."""
    conditions = [Artifact.owner_id == user.id, Artifact.job_id.is_(None)]
    rows, listing = page.newest_first(session, Artifact, *conditions)
    return FileList(
        items=[file_out(row) for row in rows],
        **listing,
        used_bytes=used_bytes(session, user.id),
    )


@router.get("/{file_id}", response_model=FileOut, responses=NOT_FOUND)
def read(artifact: OwnedFile, session: SessionDep, store: StoreDep) -> FileOut:
    """One file's metadata: name, size, SHA-256, format, tensor shapes (an artifact's too; a
    job's figure not drawn yet is drawn first)."""
    return file_out(drawn(store, session, artifact))


@router.get(
    "/{file_id}/content",
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {}}}},
)
def content(artifact: OwnedFile, session: SessionDep, store: StoreDep) -> Response:
    """The file's bytes."""
    return content_response(store, drawn(store, session, artifact))


@router.delete(
    "/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        **NOT_FOUND,
        409: problem("a job uses it, or it is a job's artifact"),
    },
)
def delete(artifact: OwnedFile, session: SessionDep, store: StoreDep) -> Response:
    """Delete an uploaded file (409 while a waiting, queued or running job reads it)."""
    try:
        delete_upload(session, store, artifact)
    except FileInUseError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
