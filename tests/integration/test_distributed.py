"""The distributed mode against the real services: PostgreSQL store, Redis broker, S3 object
store (SeaweedFS), Celery workers.

The API (``lifrnn serve`` with a broker URL) only enqueues; Celery workers started here as
subprocesses (``lifrnn worker``) run the jobs, each with a home folder of its own: nothing but
PostgreSQL, Redis and S3 is shared, as between machines. Workers are killed with SIGKILL and
Redis is restarted under queued jobs; every job must still end in exactly one recorded final
state, and a job taken over by another worker resumes from its checkpoint in S3.
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
import numpy as np
import pytest
from helpers.services import FINAL, S3Server, Server, cli, missing_service, server_env, wait_for
from sqlalchemy import func, select

from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.store.models import Job, JobEvent, Network
from lifrnn.store.users import create_user

REDIS_PORT = 6379
REDIS_DB = 7  # a database of its own on the shared server, flushed by the fixture
TINY = {"kind": "soc", "n": 30, "radius": 3.0}
SUBMISSIONS = 100
"""Jobs of the fairness test (5 from each of 20 clients): each costs ~0.7 s, mostly its figure."""

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
def objects_backend() -> str:
    """Where the cluster keeps its objects: S3 (a test may parametrize it to a shared folder)."""
    return "s3"


@pytest.fixture
def cluster_settings() -> dict[str, object]:
    """Settings a test changes for its cluster (parametrize it)."""
    return {}


@pytest.fixture
def cluster(
    request: pytest.FixtureRequest,
    postgres_url: str,
    objects_backend: str,
    cluster_settings: dict[str, object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict]:
    if not redis_ready():
        missing_service("Redis is not running on 127.0.0.1:6379 (scripts/test.sh starts it)")
    subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "-n", str(REDIS_DB), "flushdb"], check=True)
    # A fresh database for each test: tests count rows.
    import psycopg

    admin_url = postgres_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    name = f"{postgres_url.rsplit('/', 1)[1]}_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    if objects_backend == "s3":
        s3_server: S3Server = request.getfixturevalue("s3_server")
        objects = s3_server.env()
        for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
            monkeypatch.setenv(variable, objects[variable])  # this process reads S3 too
    else:  # one folder every process on this machine reaches (a lab's NFS mount, say)
        objects = {
            "LIFRNN_ARTIFACT_URL": (tmp_path / "objects").as_uri(),
            "LIFRNN_S3_ENDPOINT_URL": "",
        }
    api_home = tmp_path / "api"
    api_home.mkdir()
    settings: dict[str, object] = {
        "checkpoint_seconds": 0,
        "broker_url": f"redis://127.0.0.1:{REDIS_PORT}/{REDIS_DB}",
        "heartbeat_seconds": 0.3,
        "stale_after_seconds": 3,
        "poll_seconds": 0.1,
        "redispatch_seconds": 3,
        "cancel_grace_seconds": 3,
        "progress_interval_seconds": 0.1,
        "default_max_running": 2,
        "default_max_queued": 1000,
    }
    env = server_env(api_home, database_url, **objects, **(settings | cluster_settings))
    done = cli(env, "users", "create", "alice")
    assert done.returncode == 0, done.stderr
    tokens = {"alice": done.stdout.strip().splitlines()[-1]}
    store = Store(
        Settings(
            home=api_home,
            database_url=database_url,
            artifact_url=objects["LIFRNN_ARTIFACT_URL"],
            s3_endpoint_url=objects["LIFRNN_S3_ENDPOINT_URL"],
        )
    )
    with store.session() as session:
        _, tokens["bob"] = create_user(session, "bob", max_running=1)
        session.commit()
    server = Server(api_home, env)
    workers: list[Worker] = []

    def start_worker(label: str = "w") -> Worker:
        """A worker on its own "machine": an empty home folder of its own."""
        home = tmp_path / f"node-{label}-{len(workers)}"
        home.mkdir()
        worker = Worker(
            {**env, "LIFRNN_HOME": str(home)}, home / "worker.log", f"{label}-{len(workers)}@%h"
        )
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
            "workers": workers,
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
    job_id = submit(client, {"kind": "soc", "n": 100, "seed": 1})  # 876 iterations, ~7 s
    deadline = time.monotonic() + 120
    while True:  # wait until a checkpoint (every 100 iterations) has been written
        job = client.get(f"/jobs/{job_id}").json()
        message = job.get("message") or ""
        if message.startswith("SOC iteration ") and int(message.split()[2][:-1]) > 120:
            break
        assert job["status"] in {"queued", "running"} and time.monotonic() < deadline, job
        time.sleep(0.05)
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


# scipy's Schur form holds the GIL (~20 s at n = 2500): the heartbeat must tolerate that
@pytest.mark.parametrize("cluster_settings", [{"stale_after_seconds": 120}])
def test_a_stuck_job_is_terminated_by_an_api_started_after_it(cluster):
    """The task to kill is read from the job's row: an API restarted since the job started (or
    another replica) terminates it after the grace period, and its pool process is gone."""
    cluster["start_worker"]()
    server = cluster["server"]
    client = server.client(cluster["tokens"]["alice"])
    # n = 2500: the first Schur form and step take ~20 s, with no cancellation check in between
    stuck = submit(client, {"kind": "soc", "n": 2500, "max_iterations": 2})
    job = wait_for(client, stuck, {"running"}, timeout=60)
    pid = int(job["worker"].split(":")[1])
    server.kill()
    server.start()
    client = server.client(cluster["tokens"]["alice"])
    cancelled = client.post(f"/jobs/{stuck}/cancel").json()
    assert cancelled["status"] == "cancelling", [
        (e["status"], e["message"]) for e in client.get(f"/jobs/{stuck}/events").json()
    ]
    job = wait_for(client, stuck, FINAL, timeout=30)
    assert job["status"] == "cancelled"
    history = [e["message"] for e in client.get(f"/jobs/{stuck}/events").json()]
    assert any("did not stop within the 3 s grace period" in m for m in history), history
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():  # SIGKILLed through Celery's revoke
        assert time.monotonic() < deadline, f"the job's process {pid} still runs"
        time.sleep(0.1)
    assert wait_for(client, submit(client, TINY), FINAL, timeout=90)["status"] == "succeeded"


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


@pytest.mark.parametrize("objects_backend", ["file"])  # fairness, not storage, is tested here
def test_a_hundred_submissions_from_twenty_clients(cluster):
    cluster["start_worker"]("a")
    cluster["start_worker"]("b")
    tokens = cluster["tokens"]

    def work(index: int) -> list[str]:
        user = "alice" if index % 2 else "bob"
        with cluster["server"].client(tokens[user]) as client:
            return [submit(client, dict(TINY)) for k in range(SUBMISSIONS // 20)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = [job_id for batch in pool.map(work, range(20)) for job_id in batch]
    assert len(set(ids)) == SUBMISSIONS
    deadline = time.monotonic() + 420
    store: Store = cluster["store"]
    while True:
        with store.session() as session:
            done = session.scalar(
                select(func.count()).select_from(Job).where(Job.status.in_(sorted(FINAL)))
            )
        if done == SUBMISSIONS:
            break
        assert time.monotonic() < deadline, f"only {done} of {SUBMISSIONS} jobs finished"
        time.sleep(1)
    with store.session() as session:
        rows = session.execute(
            select(Job.owner_id, Job.started_at, Job.finished_at, Job.status)
        ).all()
        owners = dict(session.execute(select(Job.owner_id, Job.owner_id)).all())
    assert len(rows) == SUBMISSIONS and {row.status for row in rows} == {"succeeded"}
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


def _worker_holding(cluster: dict, job: dict) -> Worker:
    """The worker whose pool process runs ``job`` (its row names ``host:pid:celery``)."""
    pid = int(job["worker"].split(":")[1])
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return next(w for w in cluster["workers"] if w.process.pid in (pid, parent))


CHAIN_SOC = {"kind": "soc", "method": "kao2021", "n": 40, "seed": 0}
CHAIN_FIT = {
    "kind": "fit",
    "movements": {"directions_deg": [0, 90, 180], "duration": 0.2},
    "dt": 0.002,
    "cost_tolerance": 3e-3,  # reached at iteration 16: the kill comes well before
    "relative_tolerance": 0.0,
    "max_iterations": 40,
}
CHAIN_PREPARE = {
    "kind": "prepare",
    "controllers": ["lqr", "feedforward"],
    "spontaneous": 0.1,
    "preparation": 0.2,
    "delay": 0.1,
}
CHAIN_RETRAIN = {"kind": "retrain", "directions_deg": [45], "max_iterations": 4}


def _uninterrupted_chain(folder: Path) -> dict:
    """SOC -> fit -> retrain of the same specs, in this process, nothing killed."""
    from lifrnn.files import read_safetensors
    from lifrnn.jobs import JobContext, run_job
    from lifrnn.specs import parse_spec

    placeholder = "00000000-0000-4000-8000-000000000000"
    soc = run_job(parse_spec(CHAIN_SOC), JobContext(out_dir=folder / "soc"))
    fit = run_job(
        parse_spec({**CHAIN_FIT, "network": placeholder}),
        JobContext(
            out_dir=folder / "fit", inputs={"network": Path(soc.artifacts["network.safetensors"])}
        ),
    )
    retrain = run_job(
        parse_spec({**CHAIN_RETRAIN, "network": placeholder}),
        JobContext(
            out_dir=folder / "retrain",
            inputs={"network": Path(fit.artifacts["network.safetensors"])},
        ),
    )
    assert retrain.status == "succeeded", retrain.error
    return read_safetensors(Path(retrain.artifacts["network.safetensors"]))[0]


def test_two_nodes_run_a_chain_and_one_resumes_the_others_fit_from_s3(cluster, tmp_path):
    """API and two workers with separate homes (PostgreSQL + Redis + S3 only): the four-job
    chain is submitted at once; the worker running the fit is SIGKILLed after a checkpoint;
    the other resumes it from S3; all four succeed, equal to an uninterrupted run."""
    from safetensors.numpy import load as load_safetensors

    from lifrnn.store.cas import checkpoint_prefix

    started = time.monotonic()
    cluster["start_worker"]("a")
    cluster["start_worker"]("b")
    client = cluster["server"].client(cluster["tokens"]["alice"])
    soc = submit(client, CHAIN_SOC)
    fit = submit(client, {**CHAIN_FIT, "network": {"job": soc}})
    prepare = submit(client, {**CHAIN_PREPARE, "network": {"job": fit}})
    retrain = submit(client, {**CHAIN_RETRAIN, "network": {"job": fit}})
    objects = cluster["store"].objects
    deadline = time.monotonic() + 180
    while True:  # until the fit has saved a checkpoint after a few iterations
        job = client.get(f"/jobs/{fit}").json()
        message = job.get("message") or ""
        if job["status"] == "running" and message.startswith("fit iteration"):
            iteration = int(message.split("iteration ")[1].split(":")[0])
            if iteration >= 3 and objects.exists(f"{checkpoint_prefix(fit)}fit.safetensors"):
                break
        assert job["status"] in {"waiting", "queued", "running"}, job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    victim = _worker_holding(cluster, job)
    victim.kill()
    finished = {
        job_id: wait_for(client, job_id, FINAL, timeout=300)
        for job_id in (soc, fit, prepare, retrain)
    }
    assert {j["status"] for j in finished.values()} == {"succeeded"}, [
        (j["kind"], j["error"]) for j in finished.values()
    ]
    assert finished[fit]["attempts"] == 2
    assert finished[fit]["worker"].split(":")[1] != job["worker"].split(":")[1]
    events = client.get(f"/jobs/{fit}/events").json()
    assert any(
        "resuming the fit from its checkpoint at iteration" in (e["message"] or "") for e in events
    )
    assert not list(objects.iter_keys(checkpoint_prefix(fit)))  # cleared once it finished
    seconds = time.monotonic() - started
    network = next(a for a in finished[retrain]["artifacts"] if a["name"] == "network.safetensors")
    served = load_safetensors(client.get(network["url"]).content)
    reference = _uninterrupted_chain(tmp_path / "reference")
    for name in ("W", "C", "x_star", "h", "x_sp"):
        np.testing.assert_allclose(served[name], reference[name], rtol=0, atol=1e-10)
    print(f"two-node chain with a killed worker: {seconds:.1f} s")
