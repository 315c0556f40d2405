"""Blobs written and collected under one lock, so that no blob a row may name is ever deleted.

The content-addressed store keeps each content once, whoever brought it. Without care, one user
deleting a file while another uploads the same bytes loses data: the upload finds the blob there
and skips writing it, the deletion sees no committed row naming it and removes it, and then the
upload's row commits naming bytes that are gone.

The design (a *claim before the blob*):

- Every blob key has a row in ``blobs``, created on first use. Claiming and collecting a blob
  both start by upserting that row, which takes its lock (PostgreSQL: the row; SQLite: the one
  write lock) until their transaction ends.
- A writer records a :class:`~lifrnn.store.models.BlobClaim` for the key and commits *before* it
  looks for or writes the bytes, and removes the claim only *after* the row naming the blob has
  committed (:meth:`BlobLedger.claims`). A claim left by a process that died counts until its
  ``expires_at`` (``LIFRNN_BLOB_CLAIM_SECONDS``).
- The collector deletes a blob only while holding the lock, and only when no live claim and no
  artifact row (its bytes, or a figure's recipe) names it.

So a writer either committed its claim first (the collector then keeps the blob) or waits for the
collector's lock and then finds the blob gone and writes it again. :func:`check_consistency`
(``lifrnn admin fsck``) lists rows whose bytes are missing and blobs that nothing names.

May import: SQLAlchemy, :mod:`lifrnn.store.models`, :mod:`lifrnn.store.cas`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from lifrnn.store.cas import ArtifactStore, blob_key, file_sha256
from lifrnn.store.models import RECIPE_BLOB_NAME, Artifact, Blob, BlobClaim, new_id, utcnow
from lifrnn.store.objects import ObjectStoreUnavailableError

logger = logging.getLogger(__name__)


def _lock_blob(session: Session, key: str) -> None:
    """Upsert the lock row of ``key`` and hold its lock until the transaction ends."""
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Blob).values(key=key, touched_at=now)
    session.execute(
        statement.on_conflict_do_update(index_elements=[Blob.key], set_={"touched_at": now})
    )


def naming_keys(session: Session, digest: str) -> set[str]:
    """Blob keys that committed artifact rows name among those with SHA-256 ``digest``."""
    rows = session.execute(
        select(Artifact.name, Artifact.sha256, Artifact.recipe_sha256).where(
            or_(Artifact.sha256 == digest, Artifact.recipe_sha256 == digest)
        )
    )
    keys: set[str] = set()
    for name, sha256, recipe in rows:
        if sha256 == digest:
            keys.add(blob_key(digest, name))
        if recipe == digest:
            keys.add(blob_key(digest, RECIPE_BLOB_NAME))
    return keys


class BlobLedger:
    """Claims of blob writes in flight and the collection of unnamed blobs, in the database.

    ``sessions``: the store's session factory (each operation commits in its own session, so it
    must not be called while the caller's own session holds SQLite's write lock).
    ``claim_seconds``: how long a claim counts when its writer never removes it.
    """

    def __init__(self, sessions: sessionmaker[Session], claim_seconds: float) -> None:
        self.sessions = sessions
        self.claim_seconds = claim_seconds

    def claim(self, key: str) -> str:
        """Record a write in flight that will name blob ``key``; returns the claim's id."""
        claim_id = new_id()
        with self.sessions() as session:
            _lock_blob(session, key)
            session.add(
                BlobClaim(
                    id=claim_id,
                    blob_key=key,
                    expires_at=utcnow() + timedelta(seconds=self.claim_seconds),
                )
            )
            session.commit()
        return claim_id

    def release(self, claim_ids: Iterable[str]) -> None:
        """Remove claims whose rows have committed (or whose writes were given up)."""
        ids = sorted(set(claim_ids))
        if not ids:
            return
        with self.sessions() as session:
            session.execute(
                delete(BlobClaim)
                .where(BlobClaim.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
            session.commit()

    def collect(self, key: str, remove: Callable[[], bool]) -> bool:
        """Call ``remove`` (delete the bytes) when nothing names blob ``key``; True if it did.

        Decided and done under the blob's lock: a claim committed before keeps the blob, a
        claim that waits for the lock finds the blob gone and writes it again.
        """
        digest = key[:64]
        with self.sessions() as session:
            _lock_blob(session, key)
            now = utcnow()
            live = session.scalar(
                select(BlobClaim.id)
                .where(BlobClaim.blob_key == key, BlobClaim.expires_at > now)
                .limit(1)
            )
            if live is not None or key in naming_keys(session, digest):
                session.commit()
                return False
            removed = remove()
            session.execute(delete(BlobClaim).where(BlobClaim.blob_key == key))
            session.execute(delete(Blob).where(Blob.key == key))
            session.commit()
        return removed

    def is_claimed(self, key: str) -> bool:
        """True while a live claim names blob ``key``."""
        with self.sessions() as session:
            found = session.scalar(
                select(BlobClaim.id)
                .where(BlobClaim.blob_key == key, BlobClaim.expires_at > utcnow())
                .limit(1)
            )
        return found is not None


@dataclass
class BlobWriter:
    """Writes blobs for rows that will name them; see :meth:`BlobLedger` and
    :func:`writing`. Every blob it writes stays claimed until the writer is closed."""

    artifacts: ArtifactStore
    ledger: BlobLedger
    claim_ids: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    """Blob keys written (claimed) so far."""

    def _claim(self, key: str) -> None:
        self.claim_ids.append(self.ledger.claim(key))
        self.keys.append(key)

    def put_file(self, source: Path, name: str = "", sha256: str | None = None) -> tuple[str, int]:
        """Claim, then store the bytes of the file ``source``; returns (sha256, size)."""
        digest = sha256 or file_sha256(source)
        self._claim(blob_key(digest, name))
        return self.artifacts.put_file(source, name, sha256=digest)

    def put_bytes(self, payload: bytes, name: str = "") -> tuple[str, int]:
        """Claim, then store ``payload``; returns (sha256, size)."""
        self._claim(blob_key(hashlib.sha256(payload).hexdigest(), name))
        return self.artifacts.put_bytes(payload, name)

    def close(self) -> None:
        """Release the claims: call once the rows naming the blobs have committed."""
        self.ledger.release(self.claim_ids)
        self.claim_ids.clear()


@contextmanager
def writing(artifacts: ArtifactStore, ledger: BlobLedger) -> Iterator[BlobWriter]:
    """A :class:`BlobWriter` whose claims are released when the block ends, however it ends.

    Commit the rows naming the blobs inside the block. A block that fails leaves its blobs
    unclaimed: collect them if no row names them (:func:`collect_blobs`).
    """
    writer = BlobWriter(artifacts, ledger)
    try:
        yield writer
    finally:
        writer.close()


def collect_blobs(artifacts: ArtifactStore, ledger: BlobLedger, keys: Iterable[str]) -> int:
    """Delete the blobs among ``keys`` that no row and no write in flight names; count them.

    Runs after the deletion of the rows that named them has committed, so an object store that
    cannot be reached does not undo it: the blob stays, unnamed (``lifrnn db fsck`` lists it).
    """
    removed = 0
    for key in sorted(set(keys)):
        try:
            if ledger.collect(key, lambda key=key: artifacts.delete(key)):  # type: ignore[misc]
                removed += 1
        except ObjectStoreUnavailableError as error:
            logger.warning("blob %s not collected, the object store is unreachable: %s", key, error)
    if removed:
        logger.info("collected %d unnamed blobs", removed)
    return removed


@dataclass(frozen=True)
class Consistency:
    """What :func:`check_consistency` found."""

    missing: list[tuple[str, str]]
    """(artifact id, blob key) of rows whose bytes are not in the object store."""
    unnamed: list[str]
    """Blob keys in the object store that no row and no live claim names."""

    @property
    def ok(self) -> bool:
        """True when every row has its bytes and every blob is named."""
        return not self.missing and not self.unnamed


def check_consistency(
    session: Session, artifacts: ArtifactStore, ledger: BlobLedger
) -> Consistency:
    """Rows whose bytes are missing and blobs nothing names (``lifrnn admin fsck``).

    Reads every artifact row and lists every blob once; a blob with a live claim is being written
    and is not reported.
    """
    named: list[tuple[str, str]] = []
    for artifact_id, name, sha256, recipe in session.execute(
        select(Artifact.id, Artifact.name, Artifact.sha256, Artifact.recipe_sha256)
    ):
        if sha256 is not None:
            named.append((artifact_id, blob_key(sha256, name)))
        if recipe is not None:
            named.append((artifact_id, blob_key(recipe, RECIPE_BLOB_NAME)))
    stored = set(artifacts.blobs())
    missing = sorted((artifact_id, key) for artifact_id, key in named if key not in stored)
    keys = {key for _, key in named}
    unnamed = sorted(key for key in stored - keys if not ledger.is_claimed(key))
    return Consistency(missing=missing, unnamed=unnamed)
