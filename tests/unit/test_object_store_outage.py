"""An object store that cannot be reached is told apart from a missing object, a job waits for it
(saying so) or gives up after its budget, a checkpoint it cannot save does not stop the run, and
readiness answers within its timeout even when a part never answers.

The unreachable stores here are real: an S3 endpoint where nothing listens, and a file whose
reads fail with EIO (``/proc/self/mem``); no service is needed.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from lifrnn.api.main import create_app
from lifrnn.executor import (
    ObjectStoreWait,
    ObjectStoreWaitError,
    WaitingCheckpoints,
    WaitInterruptedError,
)
from lifrnn.jobs.base import JobCancelledError
from lifrnn.settings import Settings
from lifrnn.store.objects import (
    FileObjectStore,
    ObjectNotFoundError,
    ObjectStoreUnavailableError,
    S3ObjectStore,
)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def unreachable_s3(monkeypatch: pytest.MonkeyPatch) -> S3ObjectStore:
    """An S3 store whose endpoint refuses every connection."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lifrnn-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return S3ObjectStore("lifrnn-tests", "x", f"http://127.0.0.1:{closed_port()}")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def waiting(said: list[str], stop: bool = False, **settings: float) -> ObjectStoreWait:
    limits = {"object_store_wait_seconds": 60.0, "object_store_retry_max_seconds": 0.01}
    return ObjectStoreWait(Settings(**{**limits, **settings}), said.append, lambda: stop)


def test_an_s3_server_that_does_not_answer_is_unreachable(unreachable_s3: S3ObjectStore):
    with pytest.raises(ObjectStoreUnavailableError, match="cannot be reached") as raised:
        unreachable_s3.exists("ab/abc.npy")
    assert not isinstance(raised.value, ObjectNotFoundError)
    with pytest.raises(ObjectStoreUnavailableError):
        unreachable_s3.check()


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_failing_disk_is_unreachable_and_a_missing_file_is_missing(tmp_path: Path):
    with pytest.raises(ObjectStoreUnavailableError, match="Input/output error"):
        FileObjectStore(Path("/proc/self")).get_bytes("mem")  # reading it answers EIO
    with pytest.raises(ObjectNotFoundError):
        FileObjectStore(tmp_path).get_bytes("ab/abc.npy")
    FileObjectStore(tmp_path / "not yet made").check()  # made at the first write


def test_a_wait_retries_with_doubling_pauses_and_says_each():
    said: list[str] = []
    answers: list[Exception | str] = [
        ObjectStoreUnavailableError("s3://b", "connection refused"),
        ObjectStoreUnavailableError("s3://b", "connection refused"),
        "stored",
    ]

    def store() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    wait = waiting(said, object_store_retry_max_seconds=0.04)
    wait.first_pause_seconds = 0.02
    assert wait.run("store the job's results", store) == "stored"
    assert said == [
        "waiting for the object store to store the job's results: connection refused; "
        "retry in 0.02 s",
        "waiting for the object store to store the job's results: connection refused; "
        "retry in 0.04 s",
    ]


def test_a_wait_gives_up_after_its_budget_saying_why():
    def store() -> None:
        raise ObjectStoreUnavailableError("s3://b", "connection refused")

    started = time.monotonic()
    with pytest.raises(ObjectStoreWaitError, match="LIFRNN_OBJECT_STORE_WAIT_SECONDS"):
        waiting([], object_store_wait_seconds=0.05).run("store the job's results", store)
    assert time.monotonic() - started < 1.0


def test_a_cancelled_job_stops_waiting_as_a_cancellation():
    def store() -> None:
        raise ObjectStoreUnavailableError("s3://b", "connection refused")

    with pytest.raises(WaitInterruptedError) as raised:
        waiting([], stop=True).run("store the job's results", store)
    assert isinstance(raised.value, JobCancelledError)  # a runner reports it as cancelled


def test_a_checkpoint_that_cannot_be_saved_is_said_once_and_the_run_goes_on(
    unreachable_s3: S3ObjectStore,
):
    said: list[str] = []
    checkpoints = WaitingCheckpoints(unreachable_s3, "checkpoints/job/", 0.0, waiting(said))
    weights = {"W": np.eye(3)}
    assert checkpoints.save("soc", weights, step=100) is False
    started = time.monotonic()
    assert checkpoints.save("soc", weights, step=101) is False  # not tried again so soon
    assert time.monotonic() - started < 0.1
    assert len(said) == 1
    assert said[0].startswith(
        "checkpoint 'soc' not saved at step 100: the object store cannot be reached (Could not "
        "connect to the endpoint URL"
    )
    assert said[0].endswith("); the run goes on")


def test_readiness_answers_within_its_timeout_when_parts_never_answer(
    tmp_path: Path, silent_port: int
):
    settings = Settings(
        home=tmp_path,
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{silent_port}/lifrnn",
        broker_url=f"redis://127.0.0.1:{silent_port}/0",
        runs_jobs=False,
        workers=0,
        health_timeout_seconds=0.5,
    )
    app = create_app(settings)

    async def ask() -> tuple[httpx.Response, float, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lifrnn") as client:
            started = time.monotonic()
            ready = await client.get("/health/ready")
            took = time.monotonic() - started
            return ready, took, await client.get("/health/live")

    # a loop of its own in a thread of its own: an earlier test may leave this thread's loop set
    with ThreadPoolExecutor(1) as pool:
        ready, took, live = pool.submit(asyncio.run, ask()).result()
    assert took < 2.0
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and body["database"] == "timed out"
    assert body["broker"] in ("timed out", "unreachable") and body["object_store"] == "ok"
    assert live.status_code == 200
