"""Benchmark of creating and cancelling a 1,000-point sweep through the API, beside the per-job
path it replaced, on SQLite and on PostgreSQL.

For each database, a fresh one (a SQLite file; a PostgreSQL database created for the run and
dropped afterwards, as the tests do) is served by ``lifrnn serve`` (no workers: nothing runs)
from this code and from ``--baseline`` (a git revision, default the commit before issue 27,
whose sweeps wrote each point through ``submit_job`` and cancelled job by job: checked out into a
temporary worktree and served by the same interpreter). Each server times, ``--repeat`` times:

- ``POST /sweeps`` of ``--points`` SOC points (``n=40``, one seed each): the plan, the writes
  and the 201 with its table of points;
- ``POST /sweeps/{id}/cancel`` of that sweep: every job queued, so every one moves.

It prints the median seconds of each, the baseline's beside them and the ratio. Goal (issue 27):
under 2 s each on PostgreSQL.

    .venv/bin/python bench/sweeps.py [--points 1000] [--repeat 3] [--baseline REV]
        [--databases sqlite,postgresql] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worktree import database, server, worktree  # noqa: E402  (bench/worktree.py)

from lifrnn import __version__  # noqa: E402
from lifrnn.settings import Settings  # noqa: E402
from lifrnn.store import Store  # noqa: E402
from lifrnn.store.users import create_user  # noqa: E402

BASELINE = "588f9f1"
"""The last commit before issue 27: one ``submit_job`` per point, one cancel per job."""
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SPEC = {"kind": "soc", "n": 40, "radius": 4.0}


def seed_user(settings: Settings, points: int) -> str:
    """Migrate the store and make a user whose queue holds one sweep; their token."""
    store = Store(settings)
    store.migrate()
    with store.session() as session:
        _, token = create_user(session, "bench", max_queued=points, max_running=0)
        session.commit()
    store.dispose()
    return token


def measure(code: Path, kind: str, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Seconds of each create and each cancel of a sweep against the code in ``code``."""
    creates, cancels = [], []
    with tempfile.TemporaryDirectory(prefix="lifrnn-bench-") as folder:
        home = Path(folder)
        with database(kind, home, args.postgres) as url:
            token = seed_user(Settings(home=home, database_url=url), args.points)
            with server(code, home, url) as base:
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
                    for attempt in range(args.repeat):
                        seeds = range(attempt * args.points, (attempt + 1) * args.points)
                        body = {"spec": SPEC, "grid": {"seed": list(seeds)}}
                        began = time.perf_counter()
                        made = client.post("/sweeps", json=body)
                        creates.append(time.perf_counter() - began)
                        made.raise_for_status()
                        began = time.perf_counter()
                        client.post(f"/sweeps/{made.json()['id']}/cancel").raise_for_status()
                        cancels.append(time.perf_counter() - began)
    return creates, cancels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with")
    parser.add_argument("--postgres", default=POSTGRES, help="server URL (a database is made)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    print(
        f"lifrnn {__version__} vs {args.baseline}: a sweep of {args.points} SOC points, median "
        f"of {args.repeat}, {os.cpu_count()} CPUs"
    )
    print(f"{'database':<12}{'operation':<18}{'base s':>9}{'s':>8}{'ratio':>9}")
    with worktree(args.baseline) as baseline_code:
        for kind in args.databases.split(","):
            before = measure(baseline_code, kind, args)
            after = measure(ROOT, kind, args)
            for label, old, new in zip(("POST /sweeps", "cancel"), before, after, strict=True):
                old_s, new_s = statistics.median(old), statistics.median(new)
                print(
                    f"{kind:<12}{label:<18}{old_s:>9.2f}{new_s:>8.2f}{old_s / new_s:>8.1f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
