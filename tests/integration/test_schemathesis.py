"""Property-based API testing: schemathesis drives every operation from /openapi.json.

The server runs with no workers, so generated specs are stored but never executed; the check is
that no request, however odd, is answered with a server error (5xx). Event streams are
bounded to half a second here (on a job that never runs they would stay open).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import Server, cli, server_env


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("schemathesis")
    env = server_env(
        home,
        None,
        workers=0,
        max_body_bytes=20_000,
        default_max_queued=50,
        stream_max_seconds=0.5,
        access_log="false",
    )
    done = cli(env, "users", "create", "fuzzer")
    assert done.returncode == 0, done.stderr
    server = Server(home, env)
    server.start()
    yield server, done.stdout.strip().splitlines()[-1]
    server.stop()


def test_no_request_gets_a_server_error(idle_server, tmp_path):
    server, token = idle_server
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "50",
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
        timeout=90,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert time.monotonic() - started < 60
    assert "Traceback" not in server.log.read_text()
