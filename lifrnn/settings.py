"""Settings of the job service and of ``lifrnn run``'s local store: one pydantic-settings class.

Every field is read from the environment with the prefix ``LIFRNN_`` (``LIFRNN_DATABASE_URL``,
``LIFRNN_WORKERS``, ...). The embedded default needs none of them: a SQLite file and an artifact
folder under ``LIFRNN_HOME`` (default ``~/.local/share/lifrnn``), and an in-process worker pool.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """``$XDG_DATA_HOME/lifrnn``, else ``~/.local/share/lifrnn``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lifrnn"


class Settings(BaseSettings):
    """Service settings; each field ``name`` is read from ``LIFRNN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LIFRNN_", case_sensitive=False, extra="ignore")

    home: Path = Field(
        default_factory=default_home, description="data folder of the embedded store"
    )
    database_url: str = Field("", description="SQLAlchemy URL; default sqlite:///<home>/lifrnn.db")
    artifact_url: str = Field(
        "",
        description="object store of uploads, artifacts and checkpoints: file:///path or "
        "s3://bucket/prefix; default file://<home>/artifacts",
    )
    s3_endpoint_url: str = Field(
        "", description="S3 server other than AWS (MinIO, SeaweedFS, ...), e.g. http://s3:8333"
    )
    work_dir: Path | None = Field(None, description="scratch folders of running jobs; <home>/work")
    token_file: Path | None = Field(None, description="the local user's token; <home>/token")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=0, le=64, description="in-process worker threads (0: none)")
    heartbeat_seconds: float = Field(2.0, gt=0, description="how often a running job beats")
    stale_after_seconds: float = Field(
        30.0, gt=0, description="a running job whose heartbeat is older is re-queued"
    )
    poll_seconds: float = Field(
        0.5,
        gt=0,
        description="how often idle workers look for jobs; after looks that find none the pause "
        "doubles, up to 8 polls or 1 s, whichever is shorter (a job queued through the same "
        "process wakes them at once)",
    )
    progress_interval_seconds: float = Field(
        0.5, ge=0, description="progress is written to the store at most this often"
    )
    event_dense_seconds: float = Field(
        60.0, ge=0, description="for this long a job's every progress report joins its history"
    )
    event_interval_seconds: float = Field(
        10.0, gt=0, description="after that, one progress report per this many seconds does"
    )
    max_attempts: int = Field(3, ge=1, description="a job re-queued this often is failed instead")
    max_body_bytes: int = Field(1_000_000, ge=1, description="larger request bodies answer 413")
    max_upload_bytes: int = Field(
        256 * 2**20, ge=1, description="larger uploads (POST /files) answer 413"
    )
    max_recording_bytes: int = Field(
        4 * 2**30,
        ge=1,
        description="larger NWB recordings (POST /files of a .nwb file) answer 413; a lab's "
        "session of spike times and 1 kHz behaviour takes a few hundred MB to a few GB",
    )
    default_max_bytes: int = Field(
        10 * 2**30,
        ge=0,
        description="bytes of files and artifacts per user (429 beyond), unless their own quota",
    )
    max_job_memory_bytes: int = Field(
        16 * 2**30,
        ge=1,
        description="estimated peak memory of one job (422 beyond, unless the user's own "
        "limit): 16 GiB leaves a 24 GiB worker room for its process and the system",
    )
    max_job_output_bytes: int = Field(
        2 * 2**30, ge=1, description="estimated artifact bytes of one job (422 beyond)"
    )
    max_job_work: float = Field(
        2e15,
        gt=0,
        description="estimated work of one job, nominal floating-point operations (422 beyond); "
        "2e15 is about a day of a 2-core machine (an N=1900 SOC build of 5000 iterations)",
    )
    blob_claim_seconds: float = Field(
        6 * 3600.0,
        gt=0,
        description="a blob being written is never collected; a write whose process died "
        "stops protecting its blob after this long (then `lifrnn admin fsck` lists it)",
    )
    checkpoint_seconds: float = Field(
        5.0, ge=0, description="a running job saves its checkpoint at most this often"
    )
    object_store_wait_seconds: float = Field(
        3600.0,
        ge=0,
        description="a job that cannot reach the object store (its inputs, checkpoint or "
        "artifacts) waits this long in all, retrying, before it fails; it keeps its heartbeat "
        "and says what it waits for in its events",
    )
    object_store_retry_max_seconds: float = Field(
        60.0,
        gt=0,
        description="the longest pause between two tries of a job waiting for the object "
        "store (pauses start at 1 s and double)",
    )
    health_timeout_seconds: float = Field(
        2.0,
        gt=0,
        description="each part /health/ready checks (database, broker, object store) must "
        "answer within this, or it counts as down",
    )
    default_max_queued: int = Field(100, ge=0, description="queued jobs per user (429 beyond)")
    default_max_running: int = Field(2, ge=0, description="jobs of one user running at once")
    max_sweep_points: int = Field(
        1000, ge=1, description="points (child jobs) of one sweep (422 beyond)"
    )
    max_sweep_work: float = Field(
        1e17,
        gt=0,
        description="estimated work of one sweep, its points' estimates summed, nominal "
        "floating-point operations (422 beyond); 1e17 is 50 jobs at LIFRNN_MAX_JOB_WORK, or 1000 "
        "N=690 SOC builds of 5000 iterations",
    )
    api_threads: int = Field(
        8, ge=1, le=256, description="threads serving requests (fewer: less GIL contention)"
    )
    db_pool_size: int = Field(20, ge=1, description="database connections kept open")
    max_streams_per_user: int = Field(
        8, ge=1, description="event streams one user may hold open at once (429 beyond)"
    )
    request_timeout_seconds: float = Field(
        30.0, gt=0, description="request headers not complete, or a body stalled, this long: 408"
    )
    limit_concurrency: int = Field(
        200,
        ge=1,
        description="connections served at once (503 beyond): slow clients cannot "
        "hold every worker thread",
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="proxies whose X-Forwarded-Proto/For are trusted (comma-separated IPs, '*' "
        "for any): behind a TLS proxy, its address, so that cookies are Secure",
    )
    # Tokens and dashboard sessions (see lifrnn/store/users.py and api/dashboard/sessions.py)
    token_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="an API process remembers a checked token this long: a revoked or rotated "
        "token keeps working there for at most this many seconds (0: check every request); "
        "an open event stream checks its token again this often",
    )
    session_key: SecretStr = Field(
        SecretStr(""),
        description="key that signs the dashboard's session cookies; empty: made at first start "
        "and kept in <home>/session.key (mode 600). Several API replicas must share one "
        "LIFRNN_SESSION_KEY, or a browser signed in on one is refused by the others",
    )
    dashboard_session_hours: float = Field(
        12.0, gt=0, description="a dashboard sign-in lasts this long (or until sign-out)"
    )
    stream_max_seconds: float = Field(
        300.0,
        gt=0,
        description="an event stream closes after this; clients reconnect with Last-Event-ID",
    )
    stream_ping_seconds: float = Field(
        5.0, gt=0, le=60, description="an open event stream sends a `ping` event this often"
    )
    # Distributed mode (Celery workers; see lifrnn/dispatch.py and worker/)
    broker_url: str = Field("", description="Celery broker; empty: the embedded in-process pool")
    visibility_timeout_seconds: float = Field(
        6 * 3600.0, gt=0, description="broker visibility timeout, longer than the longest job"
    )
    redispatch_seconds: float = Field(
        60.0, gt=0, description="a job still queued this long after it was sent is sent again"
    )
    cancel_grace_seconds: float = Field(
        30.0, gt=0, description="a job still cancelling this long after the request is killed"
    )
    access_log: bool = Field(True, description="log every HTTP request")
    migrate_on_start: bool = Field(True, description="apply Alembic migrations at start-up")
    api_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="HTTP server processes of `lifrnn serve`; with more than one, the jobs run "
        "(or are dispatched) in the parent process and the API processes only serve requests",
    )
    runs_jobs: bool = Field(
        True,
        description="this process runs or dispatches jobs (false in the API processes of "
        "`lifrnn serve --api-workers N`, whose parent does)",
    )

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'lifrnn.db'}"
        if not self.artifact_url:
            self.artifact_url = (self.home / "artifacts").resolve().as_uri()
        if self.work_dir is None:
            self.work_dir = self.home / "work"
        if self.token_file is None:
            self.token_file = self.home / "token"
        return self

    @property
    def scratch(self) -> Path:
        """The work folder (resolved)."""
        assert self.work_dir is not None
        return self.work_dir

    @property
    def token_path(self) -> Path:
        """The local token file (resolved)."""
        assert self.token_file is not None
        return self.token_file

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store."""
        return self.database_url.startswith("sqlite")

    @property
    def is_loopback(self) -> bool:
        """True when the server only listens on this machine."""
        return self.host in {"127.0.0.1", "localhost", "::1"}
