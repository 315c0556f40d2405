"""With CI=true (or LIFRNN_REQUIRE_SERVICES=1) a missing service fails the tests that need it;
without, they are skipped saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDS_POSTGRES = "tests/integration/test_service.py::test_the_history_comes_in_pages[postgresql]"


def run_without_postgres(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    environment |= {"LIFRNN_TEST_PG": "postgresql://postgres@127.0.0.1:1/postgres", **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", NEEDS_POSTGRES, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("strict", [{"CI": "true"}, {"LIFRNN_REQUIRE_SERVICES": "1"}])
def test_a_missing_service_fails_in_ci(strict):
    done = run_without_postgres(**strict)
    assert done.returncode != 0, done.stdout
    assert "a service the tests need is missing: PostgreSQL not reachable" in done.stdout


def test_a_missing_service_is_skipped_elsewhere():
    done = run_without_postgres()
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
