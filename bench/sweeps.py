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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worktree import worktree  # noqa: E402  (bench/worktree.py)

from lifrnn import __version__  # noqa: E402
from lifrnn.settings import Settings  # noqa: E402
from lifrnn.store import Store  # noqa: E402
from lifrnn.store.users import create_user  # noqa: E402

BASELINE = "588f9f1"
"""The last commit before issue 27: one ``submit_job`` per point, one cancel per job."""
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SPEC = {"kind": "soc", "n": 40, "radius": 4.0}


@contextmanager
def database(kind: str, home: Path, postgres: str) -> Iterator[str]:
    """A fresh database URL of ``kind`` (sqlite or postgresql), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{home / 'lifrnn.db'}"
        return
    name = f"lifrnn_bench_sweeps_{os.getpid()}_{home.name[-6:].lower()}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(code: Path, home: Path, url: str) -> Iterator[str]:
    """``lifrnn serve`` from the code in ``code`` on a free port, running no jobs; its URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIFRNN_")},
        "LIFRNN_HOME": str(home),
        "LIFRNN_DATABASE_URL": url,
        "LIFRNN_WORKERS": "0",
        "LIFRNN_ACCESS_LOG": "false",
        "LIFRNN_MIGRATE_ON_START": "false",
        "PYTHONPATH": str(code),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lifrnn", "serve", "--port", str(port)],
        cwd=code,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the server from {code} did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


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
