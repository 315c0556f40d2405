"""No blob is lost in a race (issue 27.1): deleting a file or a job while someone stores the same
bytes, 200 rounds on SQLite with files and on PostgreSQL with S3 (SeaweedFS), and the
consistency check (``lifrnn db fsck``) that lists rows without bytes and bytes without rows.

The store is driven directly (the same functions the API routes and the workers call) so that
the two sides of each round start together at a barrier; a round loses data when the second
owner's row names a blob that is gone.
"""

from __future__ import annotations

import contextlib
import io
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.services import cli, fresh_postgres_database, server_env

from lifrnn.executor import _finish
from lifrnn.results import JobResult
from lifrnn.settings import Settings
from lifrnn.store import Artifact, Job, Store, User
from lifrnn.store.blobs import check_consistency
from lifrnn.store.jobs import delete_job
from lifrnn.store.uploads import ReceivedFile, delete_upload, receive_chunks, store_upload
from lifrnn.store.users import create_user

ROUNDS = 200
UNLIMITED = 1 << 50


@pytest.fixture(params=["sqlite-files", "postgresql-s3"])
def race_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    """A migrated store of its own, SQLite with files or PostgreSQL with S3: a database no
    server's workers poll, so that the jobs it makes are claimed by the test alone."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql-s3":
            env = request.getfixturevalue("s3_server").env()
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
                monkeypatch.setenv(name, env[name])
            settings = Settings(
                home=tmp_path,
                database_url=stack.enter_context(fresh_postgres_database("lifrnn_race")),
                artifact_url=env["LIFRNN_ARTIFACT_URL"],
                s3_endpoint_url=env["LIFRNN_S3_ENDPOINT_URL"],
            )
        else:
            settings = Settings(home=tmp_path)
        store = Store(settings)
        store.migrate()
        try:
            yield store
        finally:
            store.dispose()


def two_users(store: Store) -> tuple[User, User]:
    with store.session() as session:
        first, _ = create_user(session, f"first-{uuid.uuid4().hex[:8]}")
        second, _ = create_user(session, f"second-{uuid.uuid4().hex[:8]}")
        session.commit()
    return first, second


def npy_payload(salt: str, index: int) -> bytes:
    """Bytes of a small .npy file, different in every round and every run."""
    buffer = io.BytesIO()
    np.save(buffer, np.array([index, int(salt, 16)], dtype=np.float64))
    return buffer.getvalue()


def received(store: Store, payload: bytes) -> ReceivedFile:
    return receive_chunks([payload], "trace.npy", UNLIMITED, store.settings.scratch)


def race(pool: ThreadPoolExecutor, first: Callable[[], Any], second: Callable[[], Any]) -> Any:
    """Run both at once from a barrier; returns what ``second`` returned."""
    barrier = threading.Barrier(2)

    def start(action: Callable[[], Any]) -> Any:
        barrier.wait()
        return action()

    one, two = pool.submit(start, first), pool.submit(start, second)
    one.result()
    return two.result()


def has_bytes(store: Store, artifact: Artifact, payload: bytes) -> bool:
    key = store.artifacts.key(artifact.blob_key)
    return store.artifacts.exists(artifact.blob_key) and store.objects.get_bytes(key) == payload


def named_blobs(store: Store, owner: User, payloads: list[bytes], status: str | None) -> list[str]:
    """Store ``payloads`` and one row naming each, in one transaction (nothing races yet):
    ``owner``'s uploaded files, or with ``status`` the artifacts of jobs in that status.
    Returns the files' ids, or the jobs'."""
    ids = []
    with store.session() as session:
        for payload in payloads:
            sha256, size = store.artifacts.put_bytes(payload, "trace.npy")
            job_id = None
            if status is not None:
                job = Job(
                    owner_id=owner.id,
                    kind="soc",
                    spec={"kind": "soc"},
                    spec_sha256=sha256,
                    status=status,
                    worker="race-worker",
                )
                session.add(job)
                session.flush()
                job_id = job.id
            artifact = Artifact(
                job_id=job_id,
                owner_id=owner.id,
                name="trace.npy",
                media_type="application/octet-stream",
                size=size,
                sha256=sha256,
                format="npy",
            )
            session.add(artifact)
            session.flush()
            ids.append(job_id or artifact.id)
        session.commit()
    return ids


def test_deleting_a_file_while_another_user_uploads_the_same_bytes_loses_nothing(race_store):
    store = race_store
    alice, bob = two_users(store)
    salt = uuid.uuid4().hex[:8]
    payloads = [npy_payload(salt, index) for index in range(ROUNDS)]
    files = named_blobs(store, alice, payloads, status=None)
    lost = []
    with ThreadPoolExecutor(2) as pool:
        for index, (file_id, payload) in enumerate(zip(files, payloads, strict=True)):
            theirs = received(store, payload)

            def delete_mine(file_id: str = file_id) -> None:
                with store.session() as session:
                    artifact = session.get(Artifact, file_id)
                    assert artifact is not None
                    delete_upload(session, store, artifact)

            def upload_theirs(upload: ReceivedFile = theirs) -> Artifact:
                with store.session() as session:
                    owner = session.get(User, bob.id)
                    return store_upload(session, store, owner, upload, UNLIMITED)

            stored = race(pool, delete_mine, upload_theirs)
            if not has_bytes(store, stored, payload):
                lost.append(index)
    assert lost == [], f"{len(lost)} of {ROUNDS} uploads lost their bytes"
    with store.session() as session:
        assert check_consistency(session, store.artifacts, store.blob_ledger).ok


def test_deleting_a_job_while_another_job_stores_the_same_artifact_loses_nothing(
    race_store, tmp_path
):
    store = race_store
    alice, bob = two_users(store)
    salt = uuid.uuid4().hex[:8]
    payloads = [npy_payload(salt, index) for index in range(ROUNDS)]
    finished = named_blobs(store, alice, payloads, status="succeeded")
    running = named_blobs(store, bob, [b"running %d" % i for i in range(ROUNDS)], "running")
    lost = []
    with ThreadPoolExecutor(2) as pool:
        for index, (done, finishing) in enumerate(zip(finished, running, strict=True)):
            path = tmp_path / f"trace-{index}.npy"
            path.write_bytes(payloads[index])

            def delete_done(job_id: str = done) -> None:
                with store.session() as session:
                    job = session.get(Job, job_id)
                    assert job is not None
                    delete_job(session, job, store)

            def finish_other(job_id: str = finishing, source: Path = path) -> bool:
                result = JobResult(
                    kind="soc", status="succeeded", artifacts={"trace.npy": str(source)}
                )
                return _finish(store, job_id, bob.id, None, "race-worker", result, {}, None)

            assert race(pool, delete_done, finish_other)
            with store.session() as session:
                artifact = session.query(Artifact).filter_by(job_id=finishing).one()
            if not has_bytes(store, artifact, payloads[index]):
                lost.append(index)
    assert lost == [], f"{len(lost)} of {ROUNDS} job artifacts lost their bytes"
    with store.session() as session:
        assert check_consistency(session, store.artifacts, store.blob_ledger).missing == []


def test_fsck_lists_a_row_without_bytes_and_bytes_without_a_row(tmp_path):
    """``lifrnn db fsck`` on a store with one of each; ``--repair`` deletes the unnamed blob."""
    env = server_env(tmp_path, None)
    store = Store(Settings(home=tmp_path))
    store.migrate()
    owner, _ = two_users(store)
    with store.session() as session:
        user = session.get(User, owner.id)
        kept = store_upload(session, store, user, received(store, npy_payload("1", 1)), UNLIMITED)
        gone = store_upload(session, store, user, received(store, npy_payload("1", 2)), UNLIMITED)
    store.artifacts.delete(gone.blob_key)  # a row whose bytes went missing
    stray, _ = store.artifacts.put_bytes(b"no row names these bytes", "stray.npy")
    store.dispose()

    found = cli(env, "db", "fsck")
    assert found.returncode == 1, found.stderr
    assert found.stdout.splitlines() == [
        f"missing\t{gone.id}\t{gone.blob_key}",
        f"unnamed\t{stray}.npy",
    ]
    assert "1 rows without bytes, 1 unnamed blobs" in found.stderr

    repaired = cli(env, "db", "fsck", "--repair")
    assert "1 unnamed blobs deleted" in repaired.stderr
    assert not store.artifacts.exists(f"{stray}.npy") and store.artifacts.exists(kept.blob_key)
    again = cli(env, "db", "fsck")
    assert again.stdout.splitlines() == [f"missing\t{gone.id}\t{gone.blob_key}"]
