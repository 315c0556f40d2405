"""Tables of the job store (SQLAlchemy 2, typed ``Mapped``); created by Alembic migrations.

``users`` and their hashed ``api_tokens``; ``jobs`` with their ``job_events`` (every status change
and progress report, with its time) and ``job_inputs`` (the stored files and networks a job reads,
by id); ``artifacts`` (files a job produced or a user uploaded, kept by SHA-256 in the
content-addressed store); ``networks`` (trained networks as queryable objects, with lineage).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lifrnn.store.cas import blob_key
from lifrnn.store.flatten import flatten_metrics, flatten_params

RECIPE_BLOB_NAME = "recipe.safetensors"
"""How a figure recipe's blob is named in the content-addressed store (its extension)."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A new random identifier (UUID4 text)."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC and read back timezone-aware on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable Alembic migrations)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class User(Base):
    """A user of the service: role ``user`` or ``admin`` and quotas (None: the default)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    max_queued: Mapped[int | None] = mapped_column(Integer, default=None)
    max_running: Mapped[int | None] = mapped_column(Integer, default=None)
    max_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_job_memory: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_job_output: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_job_work: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_admin(self) -> bool:
        """True for administrators, who may list every user's jobs."""
        return self.role == "admin"


class ApiToken(Base):
    """A bearer token of a user, kept only as the SHA-256 of the token text."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class DashboardSession(Base):
    """A signed-in dashboard browser, kept as the SHA-256 of the secret in its signed cookie.

    Bound to the API token that signed in (``token_id``): rotating, revoking or deleting that
    token deletes the session with it; a session without one (older than migration 0009) is
    treated as ended."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class Job(Base):
    """One job: its spec, where it is in the status machine, and what it produced."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        # listing order (newest first, id breaks ties) straight from the index, no sort
        Index("ix_jobs_owner_status_queued", "owner_id", "status", "queued_at", "id"),
        Index("ix_jobs_owner_queued", "owner_id", "queued_at", "id"),
        Index("ix_jobs_status_queued", "status", "queued_at"),
        Index("ix_jobs_parent_job_id", "parent_job_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict[str, Any]]
    spec_sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the runner expects to finish, from its last progress report (None: no estimate yet)
    expected_end_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_detail: Mapped[str | None] = mapped_column(Text, default=None)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    worker: Mapped[str | None] = mapped_column(String(128), default=None)
    # The Celery task running it: any API process can terminate it after a cancel's grace.
    task_id: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_grace_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    code_version: Mapped[str] = mapped_column(String(32), default="")
    # The job whose network this one waits for (a spec's ``{"job": id}``); deleting it while
    # this job exists is refused (409), the foreign key is the last guard.
    parent_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), default=None
    )
    # No foreign key (networks refer to jobs already); a deleted parent leaves a dangling id
    # that lineage lookups skip.
    parent_network_id: Mapped[str | None] = mapped_column(String(36), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # What the user calls the run; not part of the spec or its hash (PATCH /jobs/{id} changes it)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    tags: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)

    @property
    def elapsed_seconds(self) -> float | None:
        """Seconds since this run started (until it finished); None before it started."""
        if self.started_at is None:
            return None
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def eta_seconds(self) -> float | None:
        """Estimated seconds left of a running job (None: no estimate, or not running)."""
        if self.status not in ("running", "cancelling") or self.expected_end_at is None:
            return None
        return max(0.0, (self.expected_end_at - utcnow()).total_seconds())

    @property
    def params(self) -> dict[str, Any]:
        """The resolved spec flattened to dotted keys (:func:`lifrnn.store.flatten`)."""
        return flatten_params(self.spec)

    @property
    def flat_metrics(self) -> dict[str, Any]:
        """The metrics flattened to dotted keys, lists indexed and reduced (.min/.max/.mean)."""
        return flatten_metrics(self.metrics)


class JobParam(Base):
    """One flattened spec field of a job, for search: ``num`` for numbers and booleans,
    ``text`` for strings and lists (compact JSON). Written when the job row is inserted."""

    __tablename__ = "job_params"
    # covering: a condition on a key is an index-only scan giving the job ids
    __table_args__ = (Index("ix_job_params_key_num", "key", "num", "job_id"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    num: Mapped[float | None] = mapped_column(Float, default=None)
    text: Mapped[str | None] = mapped_column(Text, default=None)


class JobMetric(Base):
    """One flattened numeric metric of a job, for search; written with the job's result."""

    __tablename__ = "job_metrics"
    __table_args__ = (Index("ix_job_metrics_key_value", "key", "value", "job_id"),)

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class JobEvent(Base):
    """One entry of a job's history: a status change or a progress report, with its time."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float | None] = mapped_column(Float, default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    elapsed_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    eta_seconds: Mapped[float | None] = mapped_column(Float, default=None)


class JobSeriesPoint(Base):
    """One point of a job's curve (``series``: ``abscissa``, ``cost``, ``loss``, ...) at an
    optimiser iteration ``step``; stored once (a resumed run does not store a step again)."""

    __tablename__ = "job_series"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    """A stored file: produced by a job (``job_id``) or uploaded by its owner (no job).

    Its bytes live in the content-addressed store under ``sha256``; ``format`` and ``header``
    (tensor names, dtypes and shapes, and a safetensors file's metadata) are read once, when it
    is stored, so that specs naming it are checked without reading its bytes again.

    A figure not drawn yet has no bytes (``sha256`` and ``size`` null) but a recipe, stored
    under ``recipe_sha256`` (see :mod:`lifrnn.figure_recipes`); drawing it fills ``sha256``
    and ``size`` and clears ``recipe_sha256``.
    """

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("job_id", "name", name="uq_artifacts_job_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True, default=None
    )
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(16), default="")
    header: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    recipe_sha256: Mapped[str | None] = mapped_column(String(64), index=True, default=None)

    @property
    def blob_key(self) -> str:
        """Key of the blob holding the bytes in the content-addressed store."""
        if self.sha256 is None:
            raise ValueError(f"artifact {self.id} ({self.name}) is a figure not drawn yet")
        return blob_key(self.sha256, self.name)

    @property
    def pending(self) -> bool:
        """True for a figure not drawn yet (its recipe is stored, its bytes are not)."""
        return self.sha256 is None

    @property
    def blob_keys(self) -> set[str]:
        """Every blob this row keeps alive: its bytes, or a pending figure's recipe."""
        keys = {blob_key(self.sha256, self.name)} if self.sha256 is not None else set()
        if self.recipe_sha256 is not None:
            keys.add(blob_key(self.recipe_sha256, RECIPE_BLOB_NAME))
        return keys

    @property
    def uploaded(self) -> bool:
        """True for a file a user uploaded (no job made it)."""
        return self.job_id is None


class JobInput(Base):
    """A stored input of a job, named by the spec field that refers to it (``network``,
    ``movements.targets_file``): a file (``artifact_id``), with the network it holds when it is
    one (``network_id``), or the network a parent job will make (``source_job_id``, its file
    filled in when the parent succeeds).

    The foreign keys refuse to delete what a job reads; the API answers such a deletion with 409
    naming the jobs before it gets that far.
    """

    __tablename__ = "job_inputs"
    __table_args__ = (UniqueConstraint("job_id", "field", name="uq_job_inputs_job_field"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    field: Mapped[str] = mapped_column(String(200))
    artifact_id: Mapped[str | None] = mapped_column(
        ForeignKey("artifacts.id"), index=True, default=None
    )
    network_id: Mapped[str | None] = mapped_column(
        ForeignKey("networks.id"), index=True, default=None
    )
    source_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id"), index=True, default=None
    )


class Network(Base):
    """A trained network (a ``network.safetensors`` of a job), with its lineage."""

    __tablename__ = "networks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"))
    parent_network_id: Mapped[str | None] = mapped_column(
        ForeignKey("networks.id", ondelete="SET NULL"), default=None
    )
    kind: Mapped[str] = mapped_column(String(32))
    n: Mapped[int] = mapped_column(Integer)
    method: Mapped[str | None] = mapped_column(String(64), default=None)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Blob(Base):
    """A blob of the content-addressed store, as the row that serialises writing and deleting it.

    Whoever writes a blob first records a live :class:`BlobClaim` under this row's lock; the
    collector deletes a blob only under the same lock, and only while no artifact row names it
    and no claim is live (see :mod:`lifrnn.store.blobs`). The row itself holds no bytes.
    """

    __tablename__ = "blobs"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    touched_at: Mapped[datetime] = mapped_column(default=utcnow)


class BlobClaim(Base):
    """A write in flight that will name blob ``blob_key``: an upload, a job's artifacts, a figure
    drawn on first download. Removed once the naming row is committed; one left by a process that
    died stops counting at ``expires_at``."""

    __tablename__ = "blob_claims"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    blob_key: Mapped[str] = mapped_column(String(100), index=True)
    expires_at: Mapped[datetime]
