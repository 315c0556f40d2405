"""Content-addressed artifact store: each blob under ``<root>/<sha256[:2]>/<key>``.

A blob's key is the SHA-256 of its bytes, followed by the file extension of the artifact it holds
(``<sha256>.safetensors``) so that a stored file can be handed to loaders that go by extension
(e.g. as the ``initial_weights`` of a later job).

Blobs are written atomically (temporary file in the same folder, then ``os.replace``) and
deduplicated: the same bytes are stored once, whichever jobs produced them. Rows in the
``artifacts`` table refer to blobs by SHA-256; :meth:`ArtifactStore.collect` removes the blobs no
row refers to any more.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_KEY = re.compile(r"^[0-9a-f]{64}(\.[a-z0-9]{1,16})?$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,16}$")


def blob_key(sha256: str, name: str = "") -> str:
    """Key of the blob with digest ``sha256`` for an artifact named ``name``."""
    suffix = Path(name).suffix.lower()
    return sha256 + (suffix if _SUFFIX.match(suffix) else "")


_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """Blobs on disk, addressed by the SHA-256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Where the blob ``key`` lives (whether or not it exists)."""
        if not _KEY.match(key):
            raise ValueError(f"not a blob key (SHA-256 hex digest and extension): {key!r}")
        return self.root / key[:2] / key

    def exists(self, key: str) -> bool:
        """True when the blob is stored."""
        return self.path(key).is_file()

    def put_file(self, source: Path, name: str = "") -> tuple[str, int]:
        """Store the bytes of ``source`` for an artifact ``name``; returns (sha256, size).

        Stored once per content (and extension).
        """
        sha256 = file_sha256(source)
        size = source.stat().st_size
        target = self.path(blob_key(sha256, name))
        if target.is_file():
            return sha256, size
        for attempt in range(3):  # a concurrent collect may remove the empty prefix folder
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{sha256}.")
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        try:
            with os.fdopen(handle, "wb") as stream, source.open("rb") as reader:
                shutil.copyfileobj(reader, stream, _CHUNK)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return sha256, size

    def put_bytes(self, payload: bytes, name: str = "") -> tuple[str, int]:
        """Store ``payload`` for an artifact ``name``; returns (sha256, size)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "blob"
            path.write_bytes(payload)
            return self.put_file(path, name)

    def delete(self, key: str) -> bool:
        """Remove a blob; True when it was there."""
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):  # only succeeds once the prefix folder is empty
            path.parent.rmdir()
        return True

    def blobs(self) -> Iterator[str]:
        """Key of every stored blob."""
        if not self.root.is_dir():
            return
        for prefix in self.root.iterdir():
            if prefix.is_dir() and len(prefix.name) == 2:
                for blob in prefix.iterdir():
                    if _KEY.match(blob.name):
                        yield blob.name

    def collect(self, referenced: Iterable[str], candidates: Iterable[str] | None = None) -> int:
        """Delete blobs not in ``referenced`` (among ``candidates``, default all); count them."""
        keep = set(referenced)
        removed = 0
        for key in list(self.blobs() if candidates is None else candidates):
            if key not in keep and self.delete(key):
                removed += 1
        if removed:
            logger.info("collected %d unreferenced artifact blobs", removed)
        return removed
