"""Both object stores behave alike: a folder (the embedded default) and a real S3 server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from helpers.services import S3Server

from lifrnn.store.cas import ArtifactStore
from lifrnn.store.objects import (
    FileObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    delete_prefix,
    open_object_store,
)


@pytest.fixture(params=["file", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> ObjectStore:
    if request.param == "file":
        return open_object_store((tmp_path / "objects").as_uri())
    server: S3Server = request.getfixturevalue("s3_server")
    env = server.env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, env[name])
    return open_object_store(env["LIFRNN_ARTIFACT_URL"], env["LIFRNN_S3_ENDPOINT_URL"])


def test_put_get_list_delete(objects: ObjectStore, tmp_path: Path):
    source = tmp_path / "blob"
    source.write_bytes(os.urandom(3 << 20))  # several chunks
    objects.put_file("ab/one.safetensors", source)
    objects.put_bytes("checkpoints/j1/fit.safetensors", b"state")
    objects.put_bytes("checkpoints/j2/soc.safetensors", b"other")
    assert objects.exists("ab/one.safetensors") and not objects.exists("ab/none")
    assert objects.get_bytes("checkpoints/j1/fit.safetensors") == b"state"
    assert b"".join(objects.iter_chunks("ab/one.safetensors")) == source.read_bytes()
    objects.get_file("ab/one.safetensors", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == source.read_bytes()
    assert sorted(objects.iter_keys("checkpoints/")) == [
        "checkpoints/j1/fit.safetensors",
        "checkpoints/j2/soc.safetensors",
    ]
    assert delete_prefix(objects, "checkpoints/j1/") == 1
    assert list(objects.iter_keys("checkpoints/")) == ["checkpoints/j2/soc.safetensors"]
    assert objects.delete("ab/one.safetensors") and not objects.delete("ab/one.safetensors")
    with pytest.raises(ObjectNotFoundError):
        objects.get_bytes("ab/one.safetensors")
    with pytest.raises(ObjectNotFoundError):
        objects.get_file("ab/one.safetensors", tmp_path / "none")
    with pytest.raises(ValueError, match="not an object key"):
        objects.put_bytes("../escape", b"x")


def test_content_addressing_stores_each_content_once(objects: ObjectStore):
    blobs = ArtifactStore(objects)
    first, _ = blobs.put_bytes(b"weights", "network.safetensors")
    again, _ = blobs.put_bytes(b"weights", "copy.safetensors")
    assert first == again and list(blobs.blobs()) == [f"{first}.safetensors"]
    assert blobs.delete(f"{first}.safetensors") and list(blobs.blobs()) == []


def test_s3_refuses_a_wrong_secret(s3_server: S3Server, monkeypatch):
    env = s3_server.env()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", env["AWS_ACCESS_KEY_ID"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        open_object_store(f"s3://refused-{uuid.uuid4().hex[:8]}/x", env["LIFRNN_S3_ENDPOINT_URL"])


def test_a_file_url_names_a_local_folder_only(tmp_path: Path):
    assert isinstance(open_object_store(tmp_path.as_uri()), FileObjectStore)
    with pytest.raises(ValueError, match="local path"):
        open_object_store("file://elsewhere/data")
    with pytest.raises(ValueError, match="expected file:///path or s3://bucket/prefix"):
        open_object_store("ftp://host/data")
