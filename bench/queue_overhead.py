"""Benchmark of the distributed mode's queue overhead (PostgreSQL + Redis + Celery), on demand.

``python bench/queue_overhead.py [--jobs 100]`` creates a scratch PostgreSQL database, starts
``lifrnn serve`` with a broker URL and two ``lifrnn worker`` processes, submits trivial jobs one at
a time with a warm worker waiting, then a burst, and prints:

- submit -> running: from the POST to the job's ``started_at`` (dispatch, broker, claim);
- running -> recorded: ``finished_at - started_at`` minus the job's own compute time (the
  ``seconds`` metric): artifact ingestion, network row, final status;
- jobs per second through two workers for a burst of trivial jobs.

Goal: p50 overhead < 50 ms. Needs PostgreSQL on 127.0.0.1:5432 (trust) and Redis on 6379.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

TRIVIAL = {"kind": "soc", "n": 10, "radius": 0.5}  # already stable: zero iterations
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    name = f"lifrnn_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    home = Path(tempfile.mkdtemp(prefix="lifrnn-queue-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFRNN_")}
    env.update(
        LIFRNN_HOME=str(home),
        LIFRNN_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        LIFRNN_BROKER_URL="redis://127.0.0.1:6379/9",
        LIFRNN_POLL_SECONDS="0.05",
        LIFRNN_PROGRESS_INTERVAL_SECONDS="0.5",
        LIFRNN_DEFAULT_MAX_RUNNING="4",
        LIFRNN_DEFAULT_MAX_QUEUED="100000",
        LIFRNN_ACCESS_LOG="false",
        MPLBACKEND="Agg",
    )
    subprocess.run(["redis-cli", "-n", "9", "flushdb"], check=True, capture_output=True)
    port = free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "lifrnn", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        for index in range(2):
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "lifrnn",
                        "worker",
                        "--queues",
                        "cpu",
                        "--name",
                        f"bench{index}@%h",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        token = (home / "token").read_text().strip()
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})

        def run_one() -> dict:
            submitted = time.time()
            job_id = client.post("/jobs", json=TRIVIAL).json()["id"]
            while True:
                job = client.get(f"/jobs/{job_id}").json()
                if job["status"] in {"succeeded", "failed", "cancelled"}:
                    job["submitted"] = submitted
                    return job
                time.sleep(0.005)

        for _ in range(5):  # warm-up: workers loaded, connections open
            run_one()
        to_running, to_recorded = [], []
        for _ in range(args.jobs):
            job = run_one()
            started, finished = parse_time(job["started_at"]), parse_time(job["finished_at"])
            to_running.append(started - job["submitted"])
            to_recorded.append(finished - started - float(job["metrics"]["seconds"]))
        for label, values in (
            ("submit -> running", to_running),
            ("running -> recorded", to_recorded),
        ):
            print(
                f"{label:22s} p50 {1e3 * statistics.median(values):7.1f} ms   "
                f"p99 {1e3 * percentile(values, 0.99):7.1f} ms   (goal p50 < 50 ms)"
            )
        burst = args.jobs
        start = time.monotonic()
        ids = [client.post("/jobs", json=TRIVIAL).json()["id"] for _ in range(burst)]
        while True:
            jobs = client.get("/jobs", params={"limit": 1000}).json()
            done = sum(
                1
                for j in jobs["items"]
                if j["id"] in set(ids) and j["status"] in {"succeeded", "failed"}
            )
            if done == burst:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - start
        print(f"burst of {burst} trivial jobs, 2 workers: {burst / elapsed:.1f} jobs/s")
    finally:
        for process in processes[1:]:
            os.killpg(process.pid, signal.SIGKILL)
        processes[0].terminate()
        processes[0].wait(timeout=20)
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
