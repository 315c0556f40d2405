"""Wire schemas (pydantic) of the API, separate from the tables they are read from."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    computed_field,
    field_validator,
)

from lifrnn.specs import StorableText

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a listing: its ``items``, and how many match in all when asked
    (``count=true``)."""

    items: list[ItemT]
    total: int | None = Field(
        description="every match, when asked for with count=true (else null: not counted)"
    )
    has_more: bool = Field(False, description="more match after this page (offset + limit)")
    limit: int
    offset: int


class ArtifactOut(BaseModel):
    """A file a job produced; download it from ``url``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    media_type: str
    size: int | None = Field(description="bytes; null for a figure not drawn yet")
    sha256: str | None = Field(description="SHA-256 of the bytes; null for a figure not drawn yet")
    url: str = ""

    @computed_field(  # type: ignore[prop-decorator]
        description="a figure drawn when first downloaded: its size and sha256 follow then"
    )
    @property
    def pending(self) -> bool:
        """True for a figure not drawn yet."""
        return self.sha256 is None


TAG_KEY_PATTERN = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[StorableText, StringConstraints(max_length=100)]


class RunLabels(BaseModel):
    """What a user calls a run: sent beside the spec's fields at submit (not part of the spec
    or its hash), changed with ``PATCH /jobs/{id}``. Text without NUL characters or lone
    surrogates (every store keeps it)."""

    model_config = ConfigDict(extra="forbid")

    name: StorableText | None = Field(
        None, max_length=200, description="a short name, e.g. baseline"
    )
    tags: dict[TagKey, TagValue] | None = Field(
        None,
        max_length=32,
        description="at most 32 key=value strings; keys of letters, digits, _ - and dots, "
        "at most 100 characters each, as values",
    )
    note: StorableText | None = Field(None, max_length=10_000, description="free text")


class JobOut(BaseModel):
    """A job as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    owner_id: int
    kind: str
    status: str
    progress: float = Field(
        description="fraction done in [0, 1]; runners report fractions that track elapsed time"
    )
    message: str
    elapsed_seconds: float | None = Field(
        None, description="seconds since the run started (to its end once finished)"
    )
    eta_seconds: float | None = Field(
        None, description="estimated seconds left while running (None: no estimate yet)"
    )
    spec: dict[str, Any]
    spec_sha256: str
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    attempts: int
    error: str | None
    error_detail: str | None = Field(
        None, description="traceback of a numerical failure or an internal error (owner only)"
    )
    metrics: dict[str, Any] | None
    worker: str | None
    code_version: str
    parent_job_id: str | None
    parent_network_id: str | None
    idempotency_key: str | None
    name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    note: str | None = None
    params: dict[str, Any] = Field(
        default_factory=dict, description="the resolved spec flattened to dotted keys"
    )
    flat_metrics: dict[str, Any] = Field(
        default_factory=dict,
        description="the metrics flattened to dotted keys, as search sees them: lists by "
        "index (at most 64 elements) and numeric lists also as .min, .max and .mean",
    )

    @field_validator("tags", mode="before")
    @classmethod
    def _no_tags(cls, value: Any) -> Any:
        return value if value is not None else {}


class JobDetail(JobOut):
    """A job with its artifacts and the networks it made."""

    artifacts: list[ArtifactOut] = Field(default_factory=list)
    network_ids: list[str] = Field(default_factory=list)
    reused: bool = Field(
        False, description="true when POST /jobs?reuse=true returned an earlier run of the spec"
    )


class JobList(Page[JobOut]):
    """One page of jobs, and how many match in all when asked (``count=true``)."""


class EventOut(BaseModel):
    """One entry of a job's history."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    type: Literal["status", "progress"] | str
    status: str
    progress: float | None
    message: str
    elapsed_seconds: float | None = Field(
        None, description="seconds the run had been going when this was reported"
    )
    eta_seconds: float | None = Field(
        None, description="the runner's estimate of the seconds left, when reported"
    )


SERIES_PATTERN = r"^[a-z][a-z0-9_.]{0,31}$"


class CurveOut(BaseModel):
    """One curve: values by optimiser iteration (``steps``), in step order."""

    steps: list[int]
    values: list[float]


class SeriesOut(BaseModel):
    """A job's curves by name (``abscissa``, ``cost``, ``loss``, ...)."""

    job_id: str
    series: dict[str, CurveOut]


class NetworkOut(BaseModel):
    """A trained network: what made it and from which network it descends."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    owner_id: int
    kind: str
    n: int
    method: str | None
    metrics: dict[str, Any] | None
    job_id: str
    artifact_id: str
    parent_network_id: str | None
    created_at: datetime
    url: str = ""


class NetworkDetail(NetworkOut):
    """A network with its ancestors, parent first."""

    lineage: list[NetworkOut] = Field(default_factory=list)


class NetworkList(Page[NetworkOut]):
    """One page of networks, and how many match in all when asked (``count=true``)."""


class FileOut(BaseModel):
    """A stored file: uploaded (``job_id`` null) or a job's artifact; refer to it by ``id``."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    sha256: str
    size: int
    format: str = Field(description="safetensors, npy, png, json, ...")
    shape: list[int] | None = Field(
        None, description="the shape of its one tensor (a .npy file's array), else null"
    )
    tensors: dict[str, Any] = Field(
        default_factory=dict, description="every tensor: {name: {dtype, shape}}"
    )
    recording: dict[str, Any] | None = Field(
        None,
        description="an NWB recording's summary: units, spikes, trials, trial columns, "
        "behaviour series and their shapes, duration (s); null for other files",
    )
    job_id: str | None = None
    created_at: datetime
    url: str = ""


class FileList(Page[FileOut]):
    """One page of uploaded files, the bytes the user stores in all, and how many files
    there are when asked (``count=true``)."""

    used_bytes: int


class Liveness(BaseModel):
    """``/health/live``: the process answers."""

    status: Literal["ok"]
    version: str


class Health(BaseModel):
    """``/health/ready`` (and ``/health``, the database only): ``ok``, or ``unavailable`` (503)
    with each part's state: ``ok``, ``unreachable``, ``timed out`` or ``error`` (it answered,
    refusing: credentials, a missing bucket); the broker ``not configured`` without one."""

    status: Literal["ok", "unavailable"]
    version: str
    database: str
    broker: str | None = Field(None, description="absent from /health (not checked there)")
    object_store: str | None = Field(None, description="absent from /health (not checked there)")
    workers: int = Field(description="job-running threads of this process")


class Problem(BaseModel):
    """An error: ``detail`` says what was wrong and what to do."""

    detail: str


def problem(description: str) -> dict[str, Any]:
    """A route's documented error answer (in ``responses``): a :class:`Problem`, and when."""
    return {"model": Problem, "description": description}


def required_body(media_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route that reads its body itself: a required body of
    ``media_type`` in ``schema``."""
    return {"requestBody": {"required": True, "content": {media_type: {"schema": schema}}}}


class TokenOut(BaseModel):
    """An API token's facts (never the token itself)."""

    model_config = ConfigDict(from_attributes=True)

    label: str
    created_at: datetime
    expires_at: datetime | None = Field(None, description="null: never expires")


class NewToken(TokenOut):
    """A token just issued: ``token`` is shown this once (the store keeps only its hash)."""

    token: str


class QuotasOut(BaseModel):
    """What a user may use: their own quotas, else the deployment's defaults."""

    max_queued: int = Field(description="jobs queued or waiting at once")
    max_running: int = Field(description="jobs running at once")
    max_bytes: int = Field(description="bytes of uploads and artifacts")
    max_job_memory: int = Field(description="estimated peak memory of one job (bytes)")
    max_job_output: int = Field(description="estimated artifact bytes of one job")
    max_job_work: float = Field(
        description="estimated work of one job (nominal floating-point operations)"
    )
    own: list[str] = Field(
        default_factory=list,
        description="which of these are the user's own rather than the deployment's defaults",
    )


class UsageOut(BaseModel):
    """What a user uses now."""

    queued: int = Field(description="jobs queued or waiting")
    running: int = Field(description="jobs running or cancelling")
    bytes: int = Field(description="bytes of uploads and artifacts stored")


class MeOut(BaseModel):
    """The calling user: role, quotas, usage, and the token the request came with."""

    name: str
    role: str
    created_at: datetime
    quotas: QuotasOut
    usage: UsageOut
    token: TokenOut | None = Field(
        None, description="the calling token; null on the dashboard's requests (no token)"
    )


class SweepProgress(BaseModel):
    """How far a sweep is: its jobs counted by status, and the fraction finished."""

    total: int = Field(description="jobs of the sweep")
    counts: dict[str, int] = Field(description="jobs per status, every status (zeros too)")
    finished: int = Field(description="jobs succeeded, failed or cancelled")
    fraction: float = Field(description="finished / total")


class SweepOut(BaseModel):
    """A sweep: its base spec, its axes as sent, and its progress."""

    id: str
    owner_id: int
    name: str | None
    spec: dict[str, Any] = Field(description="the base spec as sent")
    axes: dict[str, Any] = Field(description='{"grid": ...}, {"zip": ...} or {"random": ...}')
    points: int = Field(description="points (jobs) it was created with")
    created_at: datetime
    progress: SweepProgress


class SweepRow(BaseModel):
    """One point of a sweep: the values of its swept fields, its job and the job's numbers."""

    point: int
    job_id: str
    values: dict[str, Any] = Field(description="the swept fields of this point")
    status: str
    metrics: dict[str, int | float] = Field(description="the job's top-level numeric metrics")
    error: str | None = None


class SweepDetail(SweepOut):
    """A sweep with its table: one row per point, in point order."""

    rows: list[SweepRow] = Field(default_factory=list)


class SweepList(Page[SweepOut]):
    """One page of sweeps, newest first, and how many there are in all when asked
    (``count=true``)."""
