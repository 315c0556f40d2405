"""Benchmark of the job service's API under a lab's load, driven by wrk, beside a baseline.

A store with 10,000 jobs (inserted directly; the worker pool off, so nothing runs) is served by
``lifrnn serve`` on loopback, once on SQLite and once on PostgreSQL; wrk (a C load generator:
``apt-get install wrk``) then calls, for ``--seconds`` each:

- ``GET /jobs/{id}`` with 1 connection and with 32 connections (random ids),
- ``GET /jobs?status=...`` (a page of 50, 32 connections),
- ``POST /jobs`` (a small SOC spec with a random seed, 32 connections),
- ``GET /health`` (32 connections: the framework's floor).

The same runs against the code of ``--baseline`` (a git revision, default the previous release's
commit: checked out into a temporary worktree and served by the same interpreter), side by side
in the same run, and the table prints both with the ratio. Goals on 2 cores (issue 17): ``GET
/jobs/{id}`` >= 1,500 req/s with p99 < 50 ms, ``GET /jobs?status=`` >= 500 req/s with p99 <
100 ms, ``POST /jobs`` >= 300 req/s.

    .venv/bin/python bench/api.py [--jobs 10000] [--seconds 5] [--baseline REV] [--api-workers N]

``--api-workers N`` serves this code with ``lifrnn serve --api-workers N`` (the baseline, which
has no such option, with one process).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worktree import database, server, worktree  # noqa: E402  (bench/worktree.py)

from lifrnn import __version__  # noqa: E402
from lifrnn.settings import Settings  # noqa: E402
from lifrnn.store import Job, Store  # noqa: E402
from lifrnn.store.models import new_id, utcnow  # noqa: E402
from lifrnn.store.users import create_user  # noqa: E402

logger = logging.getLogger("bench.api")

STATUSES = ["succeeded"] * 6 + ["failed", "cancelled", "queued", "running"]
SPEC = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 1}
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BASELINE = "a25af21"
"""The last commit of the release before issue 17's API work (stop 21)."""

WRK_SCRIPT = r"""
-- lifrnn bench: one scenario, chosen by the first script argument
local ids = {}
local scenario, token
function init(args)
  scenario, token = args[1], args[2]
  for line in io.lines(args[3]) do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
function request()
  local headers = { ["Authorization"] = "Bearer " .. token }
  if scenario == "get" then
    return wrk.format("GET", "/jobs/" .. ids[math.random(#ids)], headers)
  elseif scenario == "list" then
    local status = (math.random(2) == 1) and "failed" or "queued"
    return wrk.format("GET", "/jobs?status=" .. status, headers)
  elseif scenario == "post" then
    headers["Content-Type"] = "application/json"
    local seed = math.random(1, 1000000000)
    local body = '{"kind": "soc", "n": 40, "radius": 4.0, "seed": ' .. seed .. '}'
    return wrk.format("POST", "/jobs", headers, body)
  else
    return wrk.format("GET", "/health", headers)
  end
end
function done(summary, latency, requests)
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %f, "errors": %d, "non2xx": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""

SCENARIOS = (
    ("GET /jobs/{id}, 1 conn", "get", 1),
    ("GET /jobs/{id}", "get", 32),
    ("GET /jobs?status=...", "list", 32),
    ("POST /jobs", "post", 32),
    ("GET /health", "health", 32),
)


@dataclass
class Result:
    """One wrk run: throughput and latency."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def seed_store(settings: Settings, jobs: int) -> tuple[str, list[str]]:
    """A migrated store with one user and ``jobs`` jobs; returns (token, job ids)."""
    store = Store(settings)
    store.migrate()
    with store.session() as session:
        user, token = create_user(session, "bench", max_queued=10**9, max_running=0)
        session.commit()
        now = utcnow()
        ids = [new_id() for _ in range(jobs)]
        rows = [
            {
                "id": job_id,
                "owner_id": user.id,
                "kind": "soc",
                "spec": {**SPEC, "seed": index},
                "spec_sha256": f"{index:064x}",
                "status": STATUSES[index % len(STATUSES)],
                "progress": 1.0,
                "message": "",
                "queued_at": now,
                "attempts": 1,
                "metrics": {"spectral_abscissa": 0.1 + index * 1e-6, "iterations": index % 500},
                "code_version": __version__,
            }
            for index, job_id in enumerate(ids)
        ]
        for start in range(0, len(rows), 2000):
            session.execute(insert(Job), rows[start : start + 2000])
        session.commit()
    store.dispose()
    return token, ids


def wrk(
    base: str, scenario: str, connections: int, seconds: float, token: str, ids: Path
) -> Result:
    """One wrk run of ``scenario``; its result."""
    script = ids.with_name("bench.lua")
    script.write_text(WRK_SCRIPT)
    threads = min(2, connections)
    done = subprocess.run(
        [
            *(
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "-s",
                str(script),
            ),
            *(base, "--", scenario, token, str(ids)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    found = json.loads(line.removeprefix("RESULT "))
    return Result(
        requests=found["requests"],
        seconds=found["seconds"],
        errors=found["errors"] + found["non2xx"],
        p50_ms=found["p50_us"] / 1e3,
        p99_ms=found["p99_us"] / 1e3,
    )


def settle(base: str, timeout: float = 60) -> None:
    """Wait until the server answers ``/health`` within 100 ms: the requests a scenario left in
    flight (writes waiting for the database's lock) are done before the next one starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = time.monotonic()
        httpx.get(f"{base}/health", timeout=timeout)
        if time.monotonic() - started < 0.1:
            return
        time.sleep(0.5)


def measure(
    code: Path, kind: str, args: argparse.Namespace, api_workers: int = 1
) -> dict[str, Result]:
    """Every scenario against the code in ``code`` on a fresh ``kind`` database."""
    with tempfile.TemporaryDirectory(prefix="lifrnn-bench-") as folder:
        home = Path(folder)
        with database(kind, home, args.postgres) as url:
            token, ids = seed_store(Settings(home=home, database_url=url, workers=0), args.jobs)
            id_file = home / "ids.txt"
            id_file.write_text("\n".join(ids) + "\n")
            with server(code, home, url, api_workers) as base:
                results = {}
                for label, scenario, connections in SCENARIOS:
                    settle(base)
                    wrk(base, scenario, connections, 1, token, id_file)  # warm-up
                    results[label] = wrk(base, scenario, connections, args.seconds, token, id_file)
                return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--postgres", default=POSTGRES, help="server URL (a database is made)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--api-workers", type=int, default=1, help="server processes (this code)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    print(
        f"lifrnn {__version__} vs {args.baseline}: {args.jobs} jobs, {args.seconds:g} s per "
        f"scenario, {os.cpu_count()} CPUs, this code with {args.api_workers} API process(es)"
    )
    header = (
        f"{'database':<11}{'operation':<24}{'base req/s':>11}{'req/s':>9}{'ratio':>7}"
        f"{'base p99':>10}{'p99 ms':>8}{'p50 ms':>8}{'errors':>8}"
    )
    with worktree(args.baseline) as baseline_code:
        for kind in args.databases.split(","):
            before = measure(baseline_code, kind, args)
            after = measure(ROOT, kind, args, args.api_workers)
            print(header)
            for label, _, _ in SCENARIOS:
                old, new = before[label], after[label]
                print(
                    f"{kind:<11}{label:<24}{old.rate:>11.0f}{new.rate:>9.0f}"
                    f"{new.rate / max(old.rate, 1e-9):>6.2f}x{old.p99_ms:>10.1f}{new.p99_ms:>8.1f}"
                    f"{new.p50_ms:>8.1f}{new.errors:>8d}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
