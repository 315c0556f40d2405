"""Parts down, said as such: readiness names the part that is down, an object-store outage is a
503 with ``Retry-After`` (never a 500), and a running job waits for the object store, keeping
its heartbeat, and finishes when it returns.

The object store is a SeaweedFS of this module's own whose S3 gateway runs as a process of its
own (``weed s3``): the tests stop it (SIGKILL) and start it again on the same port in well under
a second, while the master, volume and filer behind it keep the bytes. The database and broker
that are down are addresses where nothing listens; the machine's PostgreSQL and Redis are not
touched.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from helpers.services import (
    FINAL,
    S3Server,
    Server,
    _ports_for_weed,
    free_port,
    s3_identity,
    server_env,
    wait_for,
    weed_program,
)

STALE_AFTER_SECONDS = 2.0
JOB = {"kind": "soc", "n": 60, "seed": 2}
"""About 900 SOC iterations: a second or two, checkpointed every 100 iterations."""


def npy(seed: int) -> bytes:
    """A small ``.npy`` file's bytes."""
    buffer = io.BytesIO()
    np.save(buffer, np.random.default_rng(seed).standard_normal((4, 4)))
    return buffer.getvalue()


def _until_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"weed exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"weed did not start: {log.read_text()[-3000:]}")
        time.sleep(0.05)


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class Gateway:
    """SeaweedFS's S3 gateway (``weed s3``) in front of a filer: stopped and started at will."""

    def __init__(self, weed: str, filer: str, port: int, config: Path, log: Path) -> None:
        self.command = [
            weed,
            "s3",
            f"-filer={filer}",
            "-ip.bind=127.0.0.1",
            f"-port={port}",
            f"-config={config}",
            "-port.iceberg=0",
            "-port.lance=0",
        ]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _until_up(f"{self.endpoint}/healthz", self.process, self.log, timeout)

    def stop(self) -> None:
        """Kill it: every S3 request is refused until :meth:`start`."""
        _kill(self.process)


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, Gateway]]:
    """A SeaweedFS (master, volume, filer) and its S3 gateway, which tests may stop."""
    weed = weed_program()
    folder = tmp_path_factory.mktemp("seaweedfs-outage")
    access_key, secret_key, config = s3_identity(folder)
    master, volume, filer, s3 = _ports_for_weed(4)
    log = folder / "weed.log"
    with log.open("ab") as stream:
        cluster = subprocess.Popen(
            [
                weed,
                "server",
                f"-dir={folder}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                "-filer",
                "-master.volumeSizeLimitMB=128",
                "-volume.max=16",
                "-master.telemetry=false",
            ],
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    gateway = Gateway(weed, f"127.0.0.1:{filer}", s3, config, folder / "s3.log")
    try:
        gateway.start()
        yield S3Server(gateway.endpoint, access_key, secret_key), gateway
    finally:
        gateway.stop()
        _kill(cluster)


@pytest.fixture(scope="module")
def served(
    outage: tuple[S3Server, Gateway], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """``lifrnn serve`` (SQLite, S3 on the outage's gateway), a client with the local token."""
    s3, _ = outage
    home = tmp_path_factory.mktemp("parts-down")
    env = server_env(
        home,
        None,
        **s3.env(),
        workers=1,
        heartbeat_seconds=0.3,
        stale_after_seconds=STALE_AFTER_SECONDS,
        poll_seconds=0.1,
        progress_interval_seconds=0.1,
        checkpoint_seconds=0,
        object_store_retry_max_seconds=0.5,
    )
    server = Server(home, env)
    server.start()
    try:
        with server.client((home / "token").read_text().strip()) as client:
            yield client
    finally:
        server.stop()


def upload(client: httpx.Client, payload: bytes) -> httpx.Response:
    return client.post(
        "/files",
        params={"name": "W.npy"},
        content=payload,
        headers={"Content-Type": "application/octet-stream"},
    )


def test_ready_names_the_database_and_the_broker_that_are_down(tmp_path: Path) -> None:
    nowhere = free_port()  # nothing listens there
    env = server_env(
        tmp_path,
        f"postgresql+psycopg://postgres@127.0.0.1:{nowhere}/lifrnn",
        broker_url=f"redis://127.0.0.1:{nowhere}/0",
        runs_jobs="false",  # an API process: it starts without its database
        workers=0,
    )
    server = Server(tmp_path, env)
    server.start(probe="/health/live")
    try:
        ready = httpx.get(f"{server.url}/health/ready", timeout=10)
        health = httpx.get(f"{server.url}/health", timeout=10)
        live = httpx.get(f"{server.url}/health/live", timeout=10)
    finally:
        server.stop()
    assert ready.status_code == 503
    assert {key: ready.json()[key] for key in ("status", "database", "broker", "object_store")} == {
        "status": "unavailable",
        "database": "unreachable",
        "broker": "unreachable",
        "object_store": "ok",
    }
    assert health.status_code == 503
    assert (health.json()["status"], health.json()["database"]) == ("unavailable", "unreachable")
    assert live.status_code == 200 and live.json()["status"] == "ok"


def test_uploads_and_downloads_answer_503_while_the_object_store_is_down(
    served: httpx.Client, outage: tuple[S3Server, Gateway]
) -> None:
    _, gateway = outage
    kept = upload(served, npy(1))
    assert kept.status_code == 201, kept.text
    file_id = kept.json()["id"]
    assert served.get("/health/ready").json()["object_store"] == "ok"
    gateway.stop()
    try:
        refused = upload(served, npy(2))
        unread = served.get(f"/files/{file_id}/content")
        metadata = served.get(f"/files/{file_id}")  # the database alone still answers
        ready = served.get("/health/ready")
        live = served.get("/health/live")
    finally:
        gateway.start()
    for answer in (refused, unread):
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "5"
        assert "object store" in answer.json()["detail"]
    assert metadata.status_code == 200
    assert ready.status_code == 503
    assert (ready.json()["object_store"], ready.json()["database"]) == ("unreachable", "ok")
    assert live.status_code == 200
    assert served.get(f"/files/{file_id}/content").content == npy(1)  # back, and nothing lost


def test_a_job_waits_for_the_object_store_and_finishes_when_it_returns(
    served: httpx.Client, outage: tuple[S3Server, Gateway]
) -> None:
    _, gateway = outage
    job_id = served.post("/jobs", json=JOB).json()["id"]
    deadline = time.monotonic() + 60
    while served.get(f"/jobs/{job_id}").json()["progress"] <= 0:  # past reading its checkpoint
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.05)
    gateway.stop()
    try:
        while (
            "waiting for the object store"
            not in (job := served.get(f"/jobs/{job_id}").json())["message"]
        ):
            assert job["status"] == "running", job
            assert time.monotonic() < deadline, "the job never said that it waits"
            time.sleep(0.1)
        time.sleep(STALE_AFTER_SECONDS + 0.5)  # longer than a heartbeat may be late
        waiting = served.get(f"/jobs/{job_id}").json()
    finally:
        gateway.start()
    assert (waiting["status"], waiting["attempts"]) == ("running", 1)  # it beat while waiting
    done = wait_for(served, job_id, FINAL, timeout=60)
    assert (done["status"], done["attempts"]) == ("succeeded", 1), done
    said = [event["message"] for event in served.get(f"/jobs/{job_id}/events").json()]
    assert any(text.startswith("checkpoint 'soc' not saved at step") for text in said)
    assert any(
        text.startswith("waiting for the object store to store the job's results: ")
        and "; retry in " in text
        for text in said
    )
    artifacts = {artifact["name"]: artifact for artifact in done["artifacts"]}
    network = served.get(f"/artifacts/{artifacts['network.safetensors']['id']}")
    assert network.status_code == 200
    assert hashlib.sha256(network.content).hexdigest() == artifacts["network.safetensors"]["sha256"]
    figure = served.get(f"/artifacts/{artifacts['soc.png']['id']}")  # drawn now, stored
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
