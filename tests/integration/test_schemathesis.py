"""Property-based API testing: schemathesis drives every operation from /openapi.json, on both
deployments (SQLite with files, PostgreSQL with S3), and no request, however odd, may be
answered with a server error (5xx).

The servers run with no workers, so generated specs are stored but never executed. Beside
schemathesis' own strings, the hooks of ``schemathesis_hooks.py`` put NUL characters, lone
surrogates, NaN and infinities into what it sends (PostgreSQL's text cannot hold a NUL: a 5xx
there and not on SQLite is what this catches). Path ids are half the time those of real jobs,
a sweep and a file of the fuzzer's, so ``PATCH /jobs/{id}`` and the like reach their writes.
Event streams are bounded to half a second here (on a job that never runs they would stay open).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers.services import Server, cli, fresh_postgres_database, server_env

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SOC = {"kind": "soc", "n": 40, "radius": 4.0}


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[str]:
    """A PostgreSQL database of this module's own, dropped afterwards: the session's database
    is served by workers that would run the fuzzer's jobs."""
    with fresh_postgres_database("lifrnn_fuzz") as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def idle_server(request, tmp_path_factory):
    """An idle server (no workers) on one deployment, its fuzzer's token and the ids of the
    fuzzer's jobs, sweep and file."""
    backend = request.param
    database_url = request.getfixturevalue("own_postgres") if backend == "postgresql" else None
    objects = request.getfixturevalue("s3_server").env() if backend == "postgresql" else {}
    home = tmp_path_factory.mktemp(f"schemathesis-{backend}")
    env = server_env(
        home,
        database_url,
        **objects,
        workers=0,
        max_body_bytes=20_000,
        default_max_queued=50,
        stream_max_seconds=0.5,
        access_log="false",
    )
    done = cli(env, "users", "create", "fuzzer")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    server = Server(home, env)
    server.start()
    with server.client(token) as fuzzer:
        jobs = [fuzzer.post("/jobs", json={**SOC, "seed": seed}).json()["id"] for seed in range(4)]
        sweep = fuzzer.post("/sweeps", json={"spec": SOC, "grid": {"seed": [7, 8]}}).json()["id"]
        upload = fuzzer.post(
            "/files",
            params={"name": "W.npy"},
            content=npy_bytes(np.eye(4)),
            headers={"content-type": "application/octet-stream"},
        )
        assert upload.status_code == 201, upload.text
    yield server, token, {"job_id": jobs, "sweep_id": [sweep], "file_id": [upload.json()["id"]]}
    server.stop()


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of an ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def config_file(folder: Path, ids: dict[str, list[str]]) -> Path:
    """A schemathesis.toml: the hooks, and each path id drawn half the time from ``ids``."""
    lines = [f"hooks = {json.dumps(str(HOOKS))}", ""]
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}' for name in ids]
    path = folder / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_no_request_gets_a_server_error(idle_server, tmp_path):
    server, token, ids = idle_server
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config_file(tmp_path, ids)),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "coverage,fuzzing,stateful",
            "--max-examples",
            "20",
            "--header",
            f"Authorization: Bearer {token}",
            # rotating would revoke the one token every other request is made with
            "--exclude-path",
            "/me/tokens/rotate",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--suppress-health-check",
            "all",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in server.log.read_text()
