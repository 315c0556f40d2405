"""Benchmark of many small jobs through the service, this code beside a baseline, on demand.

``python bench/queue_overhead.py [--jobs 200] [--modes embedded celery] [--baseline REV]``
serves each code (the baseline revision, default the release before figures were deferred,
checked out into a temporary git worktree, and this working tree) in each mode:

- ``embedded``: ``lifrnn serve`` on SQLite with two in-process worker threads;
- ``celery``: ``lifrnn serve`` on a scratch PostgreSQL database with Redis as the broker and two
  ``lifrnn worker`` processes (one job at a time each).

It submits a burst of trivial jobs (an SOC build that is already stable: zero iterations, so
the job is all bookkeeping), waits for all of them, and prints per code and mode:

- jobs/s: the burst's jobs over the time from the first start to the last finish (the workers'
  rate; the submissions themselves are timed apart);
- overhead per job: ``finished_at - started_at`` minus the job's own compute (``seconds``),
  p50 and p99: artifact writing, figures, the final transaction.

Goals (issue 17): overhead under 20 ms, >= 50 trivial jobs/s through two workers. Needs
PostgreSQL on 127.0.0.1:5432 (trust) and Redis on 6379 for the Celery mode.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worktree import ROOT, worktree

logger = logging.getLogger("bench.queue_overhead")

TRIVIAL = {"kind": "soc", "n": 10, "radius": 0.5}  # already stable: zero iterations
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
BASELINE = "54ce933"
FINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Measured:
    """One code and mode's burst."""

    jobs_per_second: float
    submit_per_second: float
    overhead_p50_ms: float
    overhead_p99_ms: float
    failed: int


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards; its SQLAlchemy URL."""
    name = f"lifrnn_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def service(code: Path, mode: str) -> Iterator[tuple[httpx.Client, list[subprocess.Popen]]]:
    """The service from ``code`` in ``mode``: a client holding the local user's token."""
    home = Path(tempfile.mkdtemp(prefix="lifrnn-queue-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFRNN_")}
    env.update(
        PYTHONPATH=str(code),
        LIFRNN_HOME=str(home),
        LIFRNN_POLL_SECONDS="0.05",
        LIFRNN_PROGRESS_INTERVAL_SECONDS="0.5",
        LIFRNN_DEFAULT_MAX_RUNNING="4",
        LIFRNN_DEFAULT_MAX_QUEUED="100000",
        LIFRNN_ACCESS_LOG="false",
        MPLBACKEND="Agg",
    )
    with scratch_database() if mode == "celery" else nullcontext("") as database:
        if mode == "celery":
            env.update(LIFRNN_DATABASE_URL=database, LIFRNN_BROKER_URL="redis://127.0.0.1:6379/9")
            subprocess.run(["redis-cli", "-n", "9", "flushdb"], check=True, capture_output=True)
        else:
            env.update(LIFRNN_WORKERS="2")
        port = free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "lifrnn", "serve", "--port", str(port)],
                cwd=code,
                env=env,
                start_new_session=True,
                **quiet,  # type: ignore[call-overload]
            )
        ]
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 90
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or processes[0].poll() is not None:
                    raise RuntimeError(f"the server from {code} did not start")
                time.sleep(0.2)
            if mode == "celery":
                for index in range(2):
                    command = ["worker", "--queues", "cpu", "--name", f"bench{index}@%h"]
                    processes.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "lifrnn", *command, "--concurrency", "1"],
                            cwd=code,
                            env=env,
                            start_new_session=True,
                            **quiet,  # type: ignore[call-overload]
                        )
                    )
            token = (home / "token").read_text().strip()
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client:
                yield client, processes
        finally:
            for process in processes:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def wait_all(client: httpx.Client, ids: list[str], timeout: float = 900) -> list[dict]:
    """Poll until every job in ``ids`` is final; their detail rows."""
    pending, done = list(ids), {}
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} jobs did not finish within {timeout:.0f} s")
        job = client.get(f"/jobs/{pending[0]}").json()
        if job["status"] in FINAL:
            done[pending.pop(0)] = job
        else:
            time.sleep(0.05)
    return [done[job_id] for job_id in ids]


def burst(code: Path, mode: str, jobs: int) -> Measured:
    """Submit ``jobs`` trivial jobs at once to the service from ``code``; what it measured."""
    with service(code, mode) as (client, _):
        warm = [client.post("/jobs", json=TRIVIAL).json()["id"] for _ in range(4)]
        wait_all(client, warm)  # workers started, modules imported, connections open
        start = time.perf_counter()
        ids = []
        for _ in range(jobs):
            response = client.post("/jobs", json=TRIVIAL)
            response.raise_for_status()
            ids.append(response.json()["id"])
        submitting = time.perf_counter() - start
        rows = wait_all(client, ids)
    started = [stamp(row["started_at"]) for row in rows if row["started_at"]]
    finished = [stamp(row["finished_at"]) for row in rows if row["finished_at"]]
    overheads = [
        1e3 * (stamp(row["finished_at"]) - stamp(row["started_at"]) - row["metrics"]["seconds"])
        for row in rows
        if row["status"] == "succeeded"
    ]
    return Measured(
        jobs_per_second=jobs / (max(finished) - min(started)),
        submit_per_second=jobs / submitting,
        overhead_p50_ms=statistics.median(overheads) if overheads else float("nan"),
        overhead_p99_ms=percentile(overheads, 0.99) if overheads else float("nan"),
        failed=sum(row["status"] != "succeeded" for row in rows),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs per burst")
    parser.add_argument(
        "--modes", nargs="+", default=["embedded", "celery"], choices=["embedded", "celery"]
    )
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results: dict[tuple[str, str], Measured] = {}
    with worktree(args.baseline) as baseline_code:
        for mode in args.modes:
            for label, code in (("baseline", baseline_code), ("this code", ROOT)):
                logger.info("%s, %s: %d trivial jobs ...", mode, label, args.jobs)
                results[mode, label] = burst(code, mode, args.jobs)
    logger.info(
        "\n%d trivial jobs (%s) in a burst, two workers; baseline %s\n",
        args.jobs,
        TRIVIAL,
        args.baseline,
    )
    header = (
        f"{'mode':9s} {'code':10s} {'jobs/s':>7s} {'ratio':>6s} {'overhead p50':>13s} "
        f"{'p99':>8s} {'submits/s':>10s} {'failed':>6s}"
    )
    logger.info(header)
    for mode in args.modes:
        base = results[mode, "baseline"].jobs_per_second
        for label in ("baseline", "this code"):
            m = results[mode, label]
            logger.info(
                "%-9s %-10s %7.1f %5.1fx %10.1f ms %5.1f ms %10.1f %6d",
                mode,
                label,
                m.jobs_per_second,
                m.jobs_per_second / base,
                m.overhead_p50_ms,
                m.overhead_p99_ms,
                m.submit_per_second,
                m.failed,
            )
    logger.info("\ngoals: overhead p50 < 20 ms; >= 50 jobs/s through two workers")


if __name__ == "__main__":
    main()
