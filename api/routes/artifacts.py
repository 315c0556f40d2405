"""``/artifacts/{id}``: download a job's file with its media type, from the object store."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy.orm import Session

from lifrnn.api.deps import OwnedArtifact, SessionDep, StoreDep, not_found_response
from lifrnn.drawing import FigureUnavailableError, draw_pending
from lifrnn.store import Artifact, Store
from lifrnn.store.objects import ObjectNotFoundError

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


def content_response(store: Store, artifact: Artifact) -> Response:
    """The stored bytes of ``artifact``: a file response (file backend) or a stream (S3)."""
    key = store.artifacts.key(artifact.blob_key)
    headers = {
        "X-Content-SHA256": artifact.sha256 or "",
        "Content-Disposition": f"attachment; filename*=utf-8''{quote(artifact.name)}",
    }
    local = store.objects.local_path(key)
    if local is not None:
        if not local.is_file():
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"file {artifact.id}: its bytes are missing"
            )
        return FileResponse(local, media_type=artifact.media_type, headers=headers)
    chunks = store.objects.iter_chunks(key)
    try:
        first = next(chunks, b"")
    except ObjectNotFoundError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"file {artifact.id}: its bytes are missing"
        ) from None

    def stream() -> object:
        yield first
        yield from chunks

    headers["Content-Length"] = str(artifact.size)
    return StreamingResponse(stream(), media_type=artifact.media_type, headers=headers)  # type: ignore[arg-type]


def drawn(store: Store, session: Session, artifact: Artifact) -> Artifact:
    """``artifact`` with its bytes: a job's figure not drawn yet is drawn now (a 404 if its
    recipe has gone missing)."""
    try:
        return draw_pending(store, session, artifact)
    except FigureUnavailableError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None


@router.get(
    "/{artifact_id}",
    responses={
        200: {
            "content": {"application/octet-stream": {}, "image/png": {}, "application/json": {}},
            "description": "the file",
        },
        **not_found_response("artifact"),
    },
)
def download(artifact: OwnedArtifact, session: SessionDep, store: StoreDep) -> Response:
    """The artifact's bytes (safetensors: application/octet-stream, PNG, JSON).

    A figure not drawn yet (``pending`` in the job's artifact list) is drawn now, stored, and
    served; later downloads get the stored bytes.
    """
    return content_response(store, drawn(store, session, artifact))
