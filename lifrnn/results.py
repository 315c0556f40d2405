"""The outcome of one job (:class:`JobResult`), light enough to import without torch: ``lifrnn
run --json`` prints one for a spec it refuses before loading any job code. May import pydantic
only."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["succeeded", "failed", "cancelled"]


class JobResult(BaseModel):
    """The outcome of one job: what ``lifrnn run --json`` prints and the store will keep."""

    kind: str
    status: JobStatus
    error: str | None = None
    error_detail: str | None = Field(
        None, description="the traceback of a numerical failure or an internal error"
    )
    metrics: dict[str, Any] = Field(default_factory=dict)
    artifacts: dict[str, str] = Field(default_factory=dict)
