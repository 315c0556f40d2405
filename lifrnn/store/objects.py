"""Object stores: where the bytes of uploads, artifacts, figures and checkpoints live.

One interface, two backends, chosen by ``LIFRNN_ARTIFACT_URL``:

- ``file:///path`` (the embedded default, ``file://$LIFRNN_HOME/artifacts``): a folder; objects
  are written through a temporary file and ``os.replace``, so a reader never sees half an object.
  The folder, when this store creates it, and every object are readable by the owner only.
- ``s3://bucket/prefix``: an S3 bucket (AWS, MinIO, SeaweedFS, Ceph, ...) through boto3, with
  ``LIFRNN_S3_ENDPOINT_URL`` for a server other than AWS and the standard AWS credential variables
  (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, profiles, roles).

Keys are ``/``-separated relative names (``ab/ab12....safetensors``, ``checkpoints/<job>/fit``).
Workers on other machines reach the same objects through the same URL: nothing a job needs lives
only in one host's folder.

Two failures are told apart: :class:`ObjectNotFoundError` (no object under that key: the bytes are
gone) and :class:`ObjectStoreUnavailableError` (the store cannot be reached now: connection
refused or reset, a timeout, a 5xx answer, a failing or full disk; try again later). The API
answers the second with 503 and ``Retry-After``; a job waits for the store to return.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from lifrnn.private_files import private_dir

logger = logging.getLogger(__name__)

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
CHUNK = 1 << 20
"""Bytes per read or write when streaming objects."""


S3_CONNECT_TIMEOUT_SECONDS = 5.0
"""How long an S3 request waits for a connection (botocore's default, 60 s, would keep an upload
or a readiness check hanging for minutes behind a silent network)."""


class ObjectNotFoundError(KeyError):
    """No object under that key."""


class ObjectStoreUnavailableError(RuntimeError):
    """The object store cannot be reached now (connection refused or reset, a timeout, a 5xx
    answer, a failing or full disk): nothing is known about the object; try again later.

    ``url``: the store's URL; ``reason``: what went wrong, for logs and job events.
    """

    def __init__(self, url: str, reason: object) -> None:
        self.url = url
        self.reason = str(reason) or type(reason).__name__
        super().__init__(f"the object store {url} cannot be reached: {self.reason}")


UNREACHABLE_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EIO",
        "ENOSPC",
        "EDQUOT",
        "EROFS",
        "ESTALE",
        "ENOTCONN",
        "ETIMEDOUT",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "ENETDOWN",
        "ENETUNREACH",
        "ECONNREFUSED",
        "ECONNRESET",
    )
    if hasattr(errno, name)
)
"""Errors of a folder store that say its disk or network file system is failing, full or gone,
rather than that an object is missing (a mounted NFS or SMB share, a detached volume)."""


def check_key(key: str) -> str:
    """``key`` if it is a safe relative object name (no ``..``, no leading ``/``), else raise."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"not an object key: {key!r}")
    return key


class ObjectStore(Protocol):
    """Bytes under keys; every backend behaves the same (tests run against both).

    Every method raises :class:`ObjectStoreUnavailableError` when the store cannot be reached.
    """

    url: str

    def put_file(self, key: str, source: Path) -> None:
        """Store the file ``source`` under ``key`` (replacing what was there)."""

    def put_bytes(self, key: str, payload: bytes) -> None:
        """Store ``payload`` under ``key``."""

    def get_file(self, key: str, target: Path) -> None:
        """Write the object to ``target`` (atomically); raises :class:`ObjectNotFoundError`."""

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; raises :class:`ObjectNotFoundError`."""

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks, for streaming downloads."""

    def local_path(self, key: str) -> Path | None:
        """Where the object lies on this machine's disk (file backend), else None."""

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""

    def delete(self, key: str) -> bool:
        """Remove the object; True when it was there."""

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a folder-like ``a/b/``, or empty for all)."""

    def check(self) -> None:
        """Raise :class:`ObjectStoreUnavailableError` unless the store answers now (readiness)."""


def delete_prefix(store: ObjectStore, prefix: str) -> int:
    """Delete every object under ``prefix``; returns how many."""
    return sum(store.delete(key) for key in list(store.iter_keys(prefix)))


class FileObjectStore:
    """Objects as files under a root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.as_uri() if self.root.is_absolute() else f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Raise :class:`ObjectStoreUnavailableError` for a failing, full or vanished disk."""
        try:
            yield
        except OSError as error:
            if error.errno in UNREACHABLE_ERRNOS:
                raise ObjectStoreUnavailableError(self.url, error) from error
            raise

    def _write(self, key: str, fill: Any) -> None:
        target = self._path(key)
        with self._reachable():
            if not self.root.is_dir():
                private_dir(self.root)  # the root is the lock: objects inside are mkstemp's 600
            for attempt in range(3):  # a concurrent delete may remove an empty parent folder
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    handle, temporary = tempfile.mkstemp(
                        dir=target.parent, prefix=f".{target.name}."
                    )
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
            try:
                with os.fdopen(handle, "wb") as stream:
                    fill(stream)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise

    def put_file(self, key: str, source: Path) -> None:
        def copy(stream: Any) -> None:
            with Path(source).open("rb") as reader:
                shutil.copyfileobj(reader, stream, CHUNK)

        self._write(key, copy)

    def put_bytes(self, key: str, payload: bytes) -> None:
        self._write(key, lambda stream: stream.write(payload))

    def get_file(self, key: str, target: Path) -> None:
        source = self._path(key)
        with self._reachable():
            if not source.is_file():
                raise ObjectNotFoundError(key)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            shutil.copyfile(source, partial)
            os.replace(partial, target)

    def get_bytes(self, key: str) -> bytes:
        with self._reachable():
            try:
                return self._path(key).read_bytes()
            except FileNotFoundError:
                raise ObjectNotFoundError(key) from None

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        with self._reachable():
            try:
                stream = self._path(key).open("rb")
            except FileNotFoundError:
                raise ObjectNotFoundError(key) from None
            with stream:
                while chunk := stream.read(CHUNK):
                    yield chunk

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def exists(self, key: str) -> bool:
        with self._reachable():
            return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        path = self._path(key)
        with self._reachable():
            try:
                path.unlink()
            except FileNotFoundError:
                return False
        parent = path.parent
        while parent != self.root:  # only succeeds once a folder is empty
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return True

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        start = self.root / prefix.rstrip("/") if prefix else self.root
        if prefix and not prefix.endswith("/"):
            start = start.parent
        with self._reachable():
            if not start.is_dir():
                return
            for path in sorted(start.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        yield key

    def check(self) -> None:
        """The root folder (or, before the first object, the folder that will hold it) is a
        folder this process can write in."""
        folder = self.root
        with self._reachable():
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                raise ObjectStoreUnavailableError(self.url, f"{folder} is not a writable folder")


def _http_status(error: BaseException) -> int:
    """The HTTP status of a botocore ``ClientError`` (0 when it has none)."""
    response = getattr(error, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class S3ObjectStore:
    """Objects in an S3 bucket under a key prefix (boto3; thread-safe client)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "an s3:// LIFRNN_ARTIFACT_URL needs boto3: pip install 'lifrnn[s3]'"
            ) from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # a session of its own: boto3's default one caches the credentials it first found
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            config=Config(
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=S3_CONNECT_TIMEOUT_SECONDS,
            ),
        )

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _missing(error: Exception) -> bool:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        return code in ("404", "NoSuchKey", "NotFound")

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Raise :class:`ObjectStoreUnavailableError` when the server cannot be reached or
        answers 5xx (after botocore's own retries); other errors (403, 404, ...) pass."""
        from boto3.exceptions import RetriesExceededError, S3UploadFailedError
        from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
        from botocore.exceptions import ConnectionError as S3ConnectionError

        try:
            yield
        except (S3ConnectionError, HTTPClientError, IncompleteReadError) as error:
            raise ObjectStoreUnavailableError(self.url, error) from error
        except ClientError as error:
            if _http_status(error) >= 500:
                raise ObjectStoreUnavailableError(self.url, error) from error
            raise
        except RetriesExceededError as error:  # a download that kept breaking off
            raise ObjectStoreUnavailableError(self.url, error.last_exception) from error
        except S3UploadFailedError as error:  # boto3 wraps an upload's ClientError in this
            if _http_status(error.__context__ or error) >= 500:
                raise ObjectStoreUnavailableError(self.url, error) from error
            raise

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (a fresh test or lab server)."""
        from botocore.exceptions import ClientError

        with self._reachable():
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if not self._missing(error) and "NoSuchBucket" not in str(error):
                    raise
                try:
                    self.client.create_bucket(Bucket=self.bucket)
                except ClientError as creating:
                    code = creating.response.get("Error", {}).get("Code", "")
                    if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise  # not a race with another process: credentials, permissions, ...
                else:
                    logger.info("created the S3 bucket %s", self.bucket)

    def put_file(self, key: str, source: Path) -> None:
        with self._reachable():
            self.client.upload_file(str(source), self.bucket, self._name(key))

    def put_bytes(self, key: str, payload: bytes) -> None:
        with self._reachable():
            self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=payload)

    def get_file(self, key: str, target: Path) -> None:
        from botocore.exceptions import ClientError

        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with self._reachable():
                try:
                    self.client.download_file(self.bucket, self._name(key), str(partial))
                except ClientError as error:
                    if self._missing(error):
                        raise ObjectNotFoundError(key) from None
                    raise
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, target)

    def _body(self, key: str) -> Any:
        from botocore.exceptions import ClientError

        with self._reachable():
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
            except ClientError as error:
                if self._missing(error):
                    raise ObjectNotFoundError(key) from None
                raise

    def get_bytes(self, key: str) -> bytes:
        body = self._body(key)
        with self._reachable():
            return bytes(body.read())

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        body = self._body(key)
        try:
            with self._reachable():
                yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def local_path(self, key: str) -> Path | None:
        return None

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        with self._reachable():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._name(key))
            except ClientError as error:
                if self._missing(error):
                    return False
                raise
        return True

    def delete(self, key: str) -> bool:
        if not self.exists(key):
            return False
        with self._reachable():
            self.client.delete_object(Bucket=self.bucket, Key=self._name(key))
        return True

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        start = self._name(prefix.rstrip("/")) if prefix else self.prefix
        if prefix.endswith("/") or (not prefix and self.prefix):
            start += "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        with self._reachable():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    yield str(item["Key"])[strip:]

    def check(self) -> None:
        """The bucket answers a ``HeadBucket`` (a 403 or 404 is raised as botocore's error)."""
        with self._reachable():
            self.client.head_bucket(Bucket=self.bucket)


def open_object_store(url: str, endpoint_url: str | None = None) -> ObjectStore:
    """The object store a URL names: ``file:///path`` or ``s3://bucket/prefix``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"LIFRNN_ARTIFACT_URL {url!r}: a file URL names a local path")
        return FileObjectStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"LIFRNN_ARTIFACT_URL {url!r}: s3:// needs a bucket name")
        store = S3ObjectStore(parts.netloc, parts.path, endpoint_url)
        store.ensure_bucket()
        return store
    raise ValueError(f"LIFRNN_ARTIFACT_URL {url!r}: expected file:///path or s3://bucket/prefix")
