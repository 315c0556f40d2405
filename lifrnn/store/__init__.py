"""The job store: tables, status machine, job operations and the content-addressed artifacts.

:class:`Store` bundles what the API, the in-process workers and ``lifrnn run`` share: the
database engine and sessions, and the object store of uploads, artifacts and checkpoints.

It may import SQLAlchemy, Alembic, boto3, :mod:`lifrnn.specs`, :mod:`lifrnn.settings` and
:mod:`lifrnn_core`; never ``api/`` or ``worker/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property

from sqlalchemy.orm import Session

from lifrnn.settings import Settings
from lifrnn.store.blobs import BlobLedger, BlobWriter, collect_blobs, writing
from lifrnn.store.cas import ArtifactStore
from lifrnn.store.db import make_engine, make_sessionmaker, migrate
from lifrnn.store.models import (
    ApiToken,
    Artifact,
    Base,
    Blob,
    BlobClaim,
    DashboardSession,
    Job,
    JobEvent,
    JobInput,
    JobMetric,
    JobParam,
    JobSeriesPoint,
    Network,
    User,
)
from lifrnn.store.objects import ObjectStore, open_object_store
from lifrnn.store.search import SearchError
from lifrnn.store.status import STATUSES, TERMINAL, TRANSITIONS, Status, TransitionError
from lifrnn.store.sweep_models import Sweep, SweepJob

__all__ = [
    "STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "ApiToken",
    "Artifact",
    "ArtifactStore",
    "Base",
    "Blob",
    "BlobClaim",
    "DashboardSession",
    "Job",
    "JobEvent",
    "JobInput",
    "JobMetric",
    "JobParam",
    "JobSeriesPoint",
    "Network",
    "ObjectStore",
    "SearchError",
    "Status",
    "Store",
    "Sweep",
    "SweepJob",
    "TransitionError",
    "User",
]

logger = logging.getLogger(__name__)


class Store:
    """Database and object store of one lifrnn installation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
        self.sessions = make_sessionmaker(self.engine)

    @cached_property
    def objects(self) -> ObjectStore:
        """The object store (``LIFRNN_ARTIFACT_URL``), opened at first use."""
        return open_object_store(self.settings.artifact_url, self.settings.s3_endpoint_url)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        """Content-addressed blobs in the object store."""
        return ArtifactStore(self.objects)

    @cached_property
    def blob_ledger(self) -> BlobLedger:
        """Claims of blob writes in flight, checked before any blob is collected."""
        return BlobLedger(self.sessions, self.settings.blob_claim_seconds)

    def writing(self) -> AbstractContextManager[BlobWriter]:
        """Write blobs for rows that will name them: claimed until the block ends.

        Call it before the session that commits those rows writes anything (on SQLite a claim
        commits in a session of its own), and commit the rows inside the block.
        """
        return writing(self.artifacts, self.blob_ledger)

    def collect_blobs(self, keys: Iterable[str]) -> int:
        """Delete the blobs among ``keys`` that no row and no write in flight names; count them.

        Call it after the deletion of the rows that named them has committed.
        """
        return collect_blobs(self.artifacts, self.blob_ledger, keys)

    def migrate(self) -> None:
        """Apply the Alembic migrations (the embedded default does so at start-up)."""
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session, closed afterwards (commit explicitly)."""
        with self.sessions() as session:
            yield session

    def dispose(self) -> None:
        """Close the database connections."""
        self.engine.dispose()
