"""Content-addressed blobs in the object store: each under ``<sha256[:2]>/<sha256><extension>``.

A blob's key is the SHA-256 of its bytes followed by the extension of the file it holds
(``<sha256>.safetensors``), so a fetched blob can be handed to loaders that go by extension. The
same bytes are stored once, whichever jobs or uploads brought them. Rows in the ``artifacts``
table refer to blobs by SHA-256. Writing a blob for a row and deleting a blob no row names go
through :mod:`lifrnn.store.blobs` (``Store.writing`` and ``Store.collect_blobs``), which claims
and collects under one lock: this module alone knows nothing of rows.

Checkpoints of running jobs live in the same object store under ``checkpoints/<job id>/``
(:func:`checkpoint_prefix`), so a worker on another machine resumes what a dead one started.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from lifrnn.store.objects import CHUNK, ObjectStore

_BLOB = re.compile(r"^[0-9a-f]{2}/([0-9a-f]{64}(\.[a-z0-9]{1,16})?)$")
_NAME = re.compile(r"^[0-9a-f]{64}(\.[a-z0-9]{1,16})?$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,16}$")


def blob_key(sha256: str, name: str = "") -> str:
    """Name of the blob with digest ``sha256`` for a file named ``name`` (``<sha256><ext>``)."""
    suffix = Path(name).suffix.lower()
    return sha256 + (suffix if _SUFFIX.match(suffix) else "")


def checkpoint_prefix(job_id: str) -> str:
    """Folder-like key prefix of a job's checkpoints."""
    return f"checkpoints/{job_id}/"


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Blobs addressed by the SHA-256 of their content, in an :class:`ObjectStore`."""

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @staticmethod
    def key(blob: str) -> str:
        """Object key of the blob ``blob`` (``<sha256><ext>``)."""
        if not _NAME.match(blob):
            raise ValueError(f"not a blob name (SHA-256 hex digest and extension): {blob!r}")
        return f"{blob[:2]}/{blob}"

    def exists(self, blob: str) -> bool:
        """True when the blob is stored."""
        return self.objects.exists(self.key(blob))

    def put_file(self, source: Path, name: str = "", sha256: str | None = None) -> tuple[str, int]:
        """Store the bytes of ``source`` for a file ``name``; returns (sha256, size).

        ``sha256``: the digest when the caller computed it while writing ``source``. Stored once
        per content (and extension).
        """
        digest = sha256 or file_sha256(source)
        size = source.stat().st_size
        key = self.key(blob_key(digest, name))
        if not self.objects.exists(key):
            self.objects.put_file(key, source)
        return digest, size

    def put_bytes(self, payload: bytes, name: str = "") -> tuple[str, int]:
        """Store ``payload`` for a file ``name``; returns (sha256, size)."""
        digest = hashlib.sha256(payload).hexdigest()
        key = self.key(blob_key(digest, name))
        if not self.objects.exists(key):
            self.objects.put_bytes(key, payload)
        return digest, len(payload)

    def fetch(self, blob: str, target: Path) -> Path:
        """Copy the blob to ``target`` on this machine; returns ``target``."""
        self.objects.get_file(self.key(blob), target)
        return target

    def delete(self, blob: str) -> bool:
        """Remove a blob; True when it was there."""
        return self.objects.delete(self.key(blob))

    def blobs(self) -> Iterator[str]:
        """Name of every stored blob."""
        for key in self.objects.iter_keys():
            match = _BLOB.match(key)
            if match:
                yield match.group(1)
