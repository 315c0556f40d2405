"""``/artifacts/{id}``: download a job's file with its media type."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from api.deps import CurrentUser, SessionDep, StoreDep
from api.routes.jobs import is_uuid_text
from api.schemas import Problem
from lifrnn.store import Artifact

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


@router.get(
    "/{artifact_id}",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {}, "image/png": {}, "application/json": {}},
            "description": "the file",
        },
        404: {"model": Problem, "description": "no such artifact (or not yours)"},
    },
)
def download(
    artifact_id: str, session: SessionDep, store: StoreDep, user: CurrentUser
) -> FileResponse:
    """The artifact's bytes (safetensors: application/octet-stream, PNG, JSON)."""
    artifact = session.get(Artifact, artifact_id) if is_uuid_text(artifact_id) else None
    if artifact is None or (artifact.owner_id != user.id and not user.is_admin):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no artifact {artifact_id}")
    path = store.artifacts.path(artifact.blob_key)
    if not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"artifact {artifact_id}: file is missing")
    return FileResponse(
        path,
        media_type=artifact.media_type,
        filename=artifact.name,
        headers={"X-Content-SHA256": artifact.sha256},
    )
