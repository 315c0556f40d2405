"""Benchmark of job search at 100,000 jobs: side tables against JSON expressions, SQLite and
PostgreSQL side by side, on demand.

``python bench/search.py [--jobs 100000] [--repeat 30] [--no-postgres]`` fills a scratch SQLite
file and a scratch PostgreSQL database with the same jobs of one user (soc specs with
n in {40, 100, 200, 400, 800}, metrics with r2_min uniform in [0.9, 1], a cost, and a per-movement
r2 list), then times ``GET /jobs``'s store query (count + one page of 50, rows loaded) for:

- the two-condition filter with order_by, through the real code (:func:`list_jobs`, side tables
  ``job_params``/``job_metrics`` with their ``(key, value)`` indexes):
  ``params.n = 200 and metrics.r2_min >= 0.99``, ``order_by=metrics.cost asc``;
- the same search as JSON expressions on ``jobs.spec`` and ``jobs.metrics`` (the alternative);
- a one-condition filter on a nested per-movement reduction, and order by a param, newest page.

Goal: p50 < 50 ms on PostgreSQL for the two-condition filter with order_by.
Needs PostgreSQL on 127.0.0.1:5432 (trust) unless ``--no-postgres``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import psycopg
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from lifrnn.settings import Settings
from lifrnn.specs import parse_spec
from lifrnn.store import Job, JobMetric, JobParam, Store
from lifrnn.store.jobs import JobQuery, _metric_value, list_jobs
from lifrnn.store.models import utcnow
from lifrnn.store.search import metric_rows, param_rows
from lifrnn.store.users import create_user

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FILTER = "params.n = 200 and metrics.r2_min >= 0.99"
ORDER = "metrics.cost asc"
BATCH = 5000


def fill(store: Store, jobs: int, seed: int = 0) -> int:
    """``jobs`` jobs of one new user, with their side-table rows; returns the user's id."""
    rng = random.Random(seed)
    with store.session() as session:
        owner, _ = create_user(session, "bench")
        other, _ = create_user(session, "other")
        session.commit()
        owner_id, other_id = owner.id, other.id
    start = utcnow() - timedelta(days=30)
    specs = {
        n: parse_spec({"kind": "soc", "n": n, "radius": 4.0}).model_dump(mode="json")
        for n in (40, 100, 200, 400, 800)
    }
    with store.engine.begin() as connection:
        for first in range(0, jobs, BATCH):
            job_rows, params, metrics = [], [], []
            for index in range(first, min(first + BATCH, jobs)):
                job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                spec = dict(specs[rng.choice(list(specs))], seed=index)
                r2_min = rng.uniform(0.9, 1.0)
                r2 = [r2_min] + [rng.uniform(r2_min, 1.0) for _ in range(3)]
                values = {
                    "r2_min": r2_min,
                    "r2": r2,
                    "cost": rng.uniform(0.0, 10.0),
                    "iterations": rng.randrange(1, 5000),
                    "spectral_abscissa": rng.uniform(-2.0, 0.15),
                }
                job_rows.append(
                    {
                        "id": job_id,
                        "owner_id": owner_id if index % 10 else other_id,
                        "kind": "soc",
                        "spec": spec,
                        "spec_sha256": f"{index:064x}",
                        "status": "succeeded",
                        "progress": 1.0,
                        "message": "",
                        "queued_at": start + timedelta(seconds=index),
                        "attempts": 1,
                        "code_version": "bench",
                        "metrics": values,
                    }
                )
                params += param_rows(job_id, spec)
                metrics += metric_rows(job_id, values)
            connection.execute(insert(Job), job_rows)
            connection.execute(insert(JobParam), params)
            connection.execute(insert(JobMetric), metrics)
    # what autovacuum would have done by now: statistics, and the visibility map that lets the
    # covering indexes answer without reading the tables (VACUUM runs outside a transaction)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(
            text("VACUUM ANALYZE" if connection.dialect.name == "postgresql" else "ANALYZE")
        )
    return owner_id


def side_tables(owner_id: int, filter: str, order_by: str | None) -> Callable[[Session], int]:
    def query(session: Session) -> int:
        query = JobQuery(owner_id=owner_id, filter=filter, order_by=order_by, limit=50)
        return list_jobs(session, query)[1]

    return query


def json_expressions(owner_id: int) -> Callable[[Session], int]:
    """The two-condition search as JSON expressions on jobs.spec and jobs.metrics."""

    def query(session: Session) -> int:
        dialect = session.get_bind().dialect.name
        n = _metric_value(Job.spec, "n", dialect)
        r2_min = _metric_value(Job.metrics, "r2_min", dialect)
        cost = _metric_value(Job.metrics, "cost", dialect)
        conditions = [Job.owner_id == owner_id, n == 200, r2_min >= 0.99]
        total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
        session.scalars(
            select(Job)
            .where(*conditions)
            .order_by(cost.asc().nulls_last(), Job.queued_at.desc(), Job.id.desc())
            .limit(50)
        ).all()
        return total

    return query


def timed(store: Store, query: Callable[[Session], int], repeat: int) -> tuple[float, float, int]:
    """(p50 ms, p95 ms, matches) over ``repeat`` runs after two warm-up runs."""
    times = []
    matches = 0
    for attempt in range(repeat + 2):
        with store.session() as session:
            began = time.perf_counter()
            matches = query(session)
            if attempt >= 2:
                times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], matches


CASES = {
    f"side tables: {FILTER}, order_by={ORDER}": lambda owner: side_tables(owner, FILTER, ORDER),
    f"JSON expressions: {FILTER}, order_by={ORDER}": json_expressions,
    "side tables: metrics.r2.mean >= 0.99, newest first": lambda owner: side_tables(
        owner, "metrics.r2.mean >= 0.99", None
    ),
    "side tables: params.n = 800, order_by=params.seed desc": lambda owner: side_tables(
        owner, "params.n = 800", "params.seed desc"
    ),
}


def measure(store: Store, jobs: int, repeat: int) -> dict[str, tuple[float, float, int]]:
    began = time.perf_counter()
    owner = fill(store, jobs)
    print(
        f"  {store.engine.dialect.name}: {jobs} jobs filled in {time.perf_counter() - began:.0f} s",
        file=sys.stderr,
    )
    return {name: timed(store, make(owner), repeat) for name, make in CASES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory() as home:
        store = Store(Settings(home=Path(home)))
        store.migrate()
        results["SQLite"] = measure(store, args.jobs, args.repeat)
        store.dispose()
    if not args.no_postgres:
        name = f"lifrnn_bench_search_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        try:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            with tempfile.TemporaryDirectory() as home:
                store = Store(Settings(home=Path(home), database_url=url))
                store.migrate()
                results["PostgreSQL"] = measure(store, args.jobs, args.repeat)
                store.dispose()
        finally:
            with psycopg.connect(ADMIN, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {name}")
    backends = list(results)
    print(f"{args.jobs} jobs (90% of them one user's), count + a page of 50, ms")
    header = "| query | matches | " + " | ".join(f"{b} p50 | {b} p95" for b in backends) + " |"
    print(header)
    print("|---" * (2 + 2 * len(backends)) + "|")
    for case in CASES:
        matches = results[backends[0]][case][2]
        cells = " | ".join(
            f"{results[b][case][0]:.1f} | {results[b][case][1]:.1f}" for b in backends
        )
        print(f"| {case} | {matches} | {cells} |")


if __name__ == "__main__":
    main()
