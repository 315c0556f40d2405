"""Benchmark of the job service's API on the embedded default (SQLite), on loopback.

With 10,000 jobs inserted directly into a fresh store and the worker pool off (nothing runs),
32 concurrent clients (httpx, asyncio) call ``GET /jobs/{id}``, ``GET /jobs?status=...`` and
``POST /jobs`` (a trivial spec). Prints throughput and p50/p99 latency of each; the goal on 2
cores is p99 < 100 ms and >= 300 requests/s for the reads.

    .venv/bin/python bench/api.py [--jobs 10000] [--clients 32] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

from lifrnn import __version__
from lifrnn.settings import Settings
from lifrnn.store import Job, Store
from lifrnn.store.models import new_id, utcnow
from lifrnn.store.users import create_user

logger = logging.getLogger("bench.api")

STATUSES = ["succeeded"] * 6 + ["failed", "cancelled", "queued", "running"]
SPEC = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 1}


def seed_store(home: Path, jobs: int) -> tuple[str, list[str]]:
    """A store under ``home`` with one user and ``jobs`` jobs; returns (token, job ids)."""
    store = Store(Settings(home=home, workers=0))
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
        session.execute(insert(Job), rows)
        session.commit()
    store.dispose()
    return token, ids


SERVER_PID = 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIFRNN_HOME": str(home), "LIFRNN_WORKERS": "0"}
    env["LIFRNN_ACCESS_LOG"] = "false"
    server = subprocess.Popen(
        [sys.executable, "-m", "lifrnn", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("server did not start")


async def scenario(
    base: str, token: str, name: str, request: object, clients: int, seconds: float
) -> dict[str, float]:
    """Run ``request(client)`` from ``clients`` tasks for ``seconds``; latency statistics."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, trust_env=False
    ) as client:
        stop = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                started = time.perf_counter()
                response = await request(client)  # type: ignore[operator]
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 400:
                    errors += 1

        began = time.perf_counter()
        cpu = time.process_time()
        server_cpu = _cpu_seconds(SERVER_PID)
        await asyncio.gather(*(loop() for _ in range(clients)))
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu
        server_cpu = _cpu_seconds(SERVER_PID) - server_cpu
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput": len(latencies) / elapsed,
        "p50_ms": 1e3 * statistics.median(latencies),
        "p99_ms": 1e3 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "client_cpu": cpu / elapsed,
        "server_cpu": server_cpu / elapsed,
    }


async def run(base: str, token: str, ids: list[str], clients: int, seconds: float) -> None:
    rng = random.Random(0)

    async def get_job(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get(f"/jobs/{rng.choice(ids)}")

    async def list_jobs(client: httpx.AsyncClient) -> httpx.Response:
        return await client.get("/jobs", params={"status": rng.choice(["failed", "queued"])})

    async def post_job(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post("/jobs", json={**SPEC, "seed": rng.randrange(10**9)})

    print(
        f"{'operation':<24}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>10}"
        f"{'p99 ms':>10}{'server CPU':>12}{'client CPU':>12}"
    )
    for name, request in [
        ("GET /jobs/{id}", get_job),
        ("GET /jobs?status=...", list_jobs),
        ("POST /jobs", post_job),
    ]:
        await scenario(base, token, name, request, clients, 1.0)  # warm-up
        stats = await scenario(base, token, name, request, clients, seconds)
        print(
            f"{name:<24}{stats['requests']:>10.0f}{stats['errors']:>8.0f}"
            f"{stats['throughput']:>10.0f}{stats['p50_ms']:>10.1f}{stats['p99_ms']:>10.1f}"
            f"{stats['server_cpu']:>12.2f}{stats['client_cpu']:>12.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="lifrnn-bench-") as folder:
        home = Path(folder)
        token, ids = seed_store(home, args.jobs)
        port = free_port()
        server = start_server(home, port)
        global SERVER_PID
        SERVER_PID = server.pid
        try:
            print(
                f"lifrnn {__version__}, SQLite, {args.jobs} jobs, {args.clients} clients, "
                f"{args.seconds:g} s per operation, {os.cpu_count()} CPUs"
            )
            asyncio.run(run(f"http://127.0.0.1:{port}", token, ids, args.clients, args.seconds))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
