"""The distributed mode against the real services: PostgreSQL store, Redis broker, Celery workers.

The API (``lifrnn serve`` with a broker URL) only enqueues; Celery workers started here as
subprocesses (``lifrnn worker``) run the jobs. Workers are killed with SIGKILL and Redis is
restarted under queued jobs; every job must still end in exactly one recorded final state.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import FINAL, Server, cli, server_env, wait_for
from sqlalchemy import func, select

from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.store.models import Job, JobEvent, Network
from lifrnn.store.users import create_user

REDIS_PORT = 6379
REDIS_DB = 7  # a database of its own on the shared server, flushed by the fixture
TINY = {"kind": "soc", "n": 30, "radius": 3.0}

pytestmark = pytest.mark.integration


def redis_ready() -> bool:
    return (
        shutil.which("redis-cli") is not None
        and subprocess.run(
            ["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True, check=False
        ).returncode
        == 0
    )


def restart_redis() -> None:
    """Stop the Redis server (dropping every queued message) and start it again."""
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], check=False)
    deadline = time.monotonic() + 10
    while redis_ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not redis_ready():
        assert time.monotonic() < deadline, "Redis did not come back"
        time.sleep(0.1)


class Worker:
    """One ``lifrnn worker`` subprocess (a Celery worker)."""

    def __init__(self, env: dict[str, str], log: Path, name: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lifrnn", "worker", "--queues", "cpu", "--name", name],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes, as a crashed node would vanish."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def cluster(postgres_url: str, tmp_path: Path) -> Iterator[dict]:
    if not redis_ready():
        pytest.skip("Redis is not running on 127.0.0.1:6379 (scripts/test.sh starts it)")
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "-n", str(REDIS_DB), "flushdb"], check=True)
    # A fresh database for each test: tests count rows.
    import psycopg

    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    name = f"{postgres_url.rsplit('/', 1)[1]}_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    env = server_env(
        tmp_path,
        database_url,
        broker_url=f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}",
        heartbeat_seconds=0.3,
        stale_after_seconds=3,
        poll_seconds=0.1,
        redispatch_seconds=3,
        cancel_grace_seconds=3,
        progress_interval_seconds=0.1,
        default_max_running=2,
        default_max_queued=1000,
    )
    done = cli(env, "users", "create", "alice")
    assert done.returncode == 0, done.stderr
    tokens = {"alice": done.stdout.strip().splitlines()[-1]}
    store = Store(Settings(home=tmp_path, database_url=database_url))
    with store.session() as session:
        _, tokens["bob"] = create_user(session, "bob", max_running=1)
        session.commit()
    server = Server(tmp_path, env)
    workers: list[Worker] = []

    def start_worker(label: str = "w") -> Worker:
        worker = Worker(env, tmp_path / f"worker-{label}.log", f"{label}-{len(workers)}@%h")
        workers.append(worker)
        return worker

    try:
        server.start()
        yield {
            "server": server,
            "tokens": tokens,
            "store": store,
            "start_worker": start_worker,
            "env": env,
        }
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
        store.dispose()
        with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def submit(client: httpx.Client, spec: dict) -> str:
    response = client.post("/jobs", json=spec)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_celery_worker_runs_soc_and_fit_into_postgres(cluster):
    cluster["start_worker"]()
    client = cluster["server"].client(cluster["tokens"]["alice"])
    soc = submit(client, TINY)
    fit = submit(
        client,
        {
            "kind": "fit",
            "network": {"kind": "soc", "method": "kao2021", "n": 40},
            "movements": {"directions_deg": [0, 180], "duration": 0.2},
            "dt": 0.002,
        },
    )
    for job_id in (soc, fit):
        job = wait_for(client, job_id, FINAL, timeout=120)
        assert job["status"] == "succeeded", (job["error"], job["message"])
        assert job["worker"].endswith(":celery")  # run by a Celery worker process
    with cluster["store"].session() as session:
        assert session.scalar(select(func.count()).select_from(Network)) == 2
    artifacts = client.get(f"/jobs/{fit}").json()["artifacts"]
    network = next(a for a in artifacts if a["name"] == "network.safetensors")
    assert client.get(f"/artifacts/{network['id']}").status_code == 200


def test_killed_worker_job_resumes_from_its_checkpoint(cluster):
    first = cluster["start_worker"]("first")
    client = cluster["server"].client(cluster["tokens"]["alice"])
    job_id = submit(client, {"kind": "soc", "n": 200, "seed": 1})  # ~2,000 iterations
    deadline = time.monotonic() + 120
    while True:  # wait until a checkpoint (every 100 iterations) has been written
        job = client.get(f"/jobs/{job_id}").json()
        if "iteration 1" in (job.get("message") or "") and job["progress"] > 0.02:
            message = job["message"]
            if int(message.split("iteration ")[1].split(":")[0]) > 120:
                break
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    first.kill()
    cluster["start_worker"]("second")
    job = wait_for(client, job_id, FINAL, timeout=240)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    events = client.get(f"/jobs/{job_id}/events").json()
    assert any("resuming" in (event.get("message") or "") for event in events)
    with cluster["store"].session() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Network).where(Network.job_id == job_id)
            )
            == 1
        )
        finals = session.scalar(
            select(func.count())
            .select_from(JobEvent)
            .where(
                JobEvent.job_id == job_id,
                JobEvent.type == "status",
                JobEvent.status.in_(sorted(FINAL)),
            )
        )
        assert finals == 1


def test_redis_restart_with_fifty_queued_jobs_loses_none(cluster):
    client = cluster["server"].client(cluster["tokens"]["alice"])
    ids = [submit(client, dict(TINY)) for seed in range(50)]
    restart_redis()  # every message on the broker is gone; the store still has the jobs
    cluster["start_worker"]()
    for job_id in ids:
        job = wait_for(client, job_id, FINAL, timeout=240)
        assert job["status"] == "succeeded", (job["error"], job["message"])
    with cluster["store"].session() as session:
        attempts = session.scalars(select(Job.attempts).where(Job.id.in_(ids))).all()
    assert sorted(attempts) == [1] * 50  # none ran twice


def test_cancel_a_running_job_and_the_worker_takes_the_next(cluster):
    cluster["start_worker"]()
    client = cluster["server"].client(cluster["tokens"]["alice"])
    long = submit(client, {"kind": "soc", "n": 200, "max_iterations": 100000})
    wait_for(client, long, {"running"}, timeout=60)
    time.sleep(1.0)
    assert client.post(f"/jobs/{long}/cancel").status_code in (200, 202)
    started = time.monotonic()
    job = wait_for(client, long, FINAL, timeout=30)
    assert job["status"] == "cancelled"
    assert time.monotonic() - started < 3 + 2  # the grace period, plus polling
    nxt = submit(client, TINY)
    assert wait_for(client, nxt, FINAL, timeout=60)["status"] == "succeeded"


def test_five_hundred_submissions_from_twenty_clients(cluster):
    cluster["start_worker"]("a")
    cluster["start_worker"]("b")
    tokens = cluster["tokens"]

    def work(index: int) -> list[str]:
        user = "alice" if index % 2 else "bob"
        with cluster["server"].client(tokens[user]) as client:
            return [submit(client, dict(TINY)) for k in range(25)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = [job_id for batch in pool.map(work, range(20)) for job_id in batch]
    assert len(set(ids)) == 500
    deadline = time.monotonic() + 420
    store: Store = cluster["store"]
    while True:
        with store.session() as session:
            done = session.scalar(
                select(func.count()).select_from(Job).where(Job.status.in_(sorted(FINAL)))
            )
        if done == 500:
            break
        assert time.monotonic() < deadline, f"only {done} of 500 jobs finished"
        time.sleep(1)
    with store.session() as session:
        rows = session.execute(
            select(Job.owner_id, Job.started_at, Job.finished_at, Job.status)
        ).all()
        owners = dict(session.execute(select(Job.owner_id, Job.owner_id)).all())
    assert len(rows) == 500 and {row.status for row in rows} == {"succeeded"}
    # Per-user limits held: never more of one user's jobs running at once than allowed
    # (bob: 1, alice: the default 2).
    limits = {}
    for owner in owners:
        with store.session() as session:
            from lifrnn.store.models import User

            user = session.get(User, owner)
            assert user is not None
            limits[owner] = user.max_running if user.max_running is not None else 2
    for owner, limit in limits.items():
        spans = sorted((r.started_at, r.finished_at) for r in rows if r.owner_id == owner)
        for start, _ in spans:
            overlapping = [(s, f) for s, f in spans if s <= start < f]
            assert len(overlapping) <= limit, (owner, limit, overlapping)
