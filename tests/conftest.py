"""Shared test set-up: the local store of every test run lives in a temporary LIFRNN_HOME, and
the science checks share one full-size SOC build.

``lifrnn run`` records its jobs in the store under ``LIFRNN_HOME``; without this, the tests
(which run it in subprocesses) would write into the user's real data folder.

``stroud_build`` is the one full-size (N = 200) hennequin2014 build, on the documented initial
matrix of tests/science/test_stroud_reference.py (``initial_draw: "stroud"``, seed 0), through the
whole spec path a job takes, once per run: the step-for-step comparison with Stroud's code and the
reference bands of docs/science.md §2 (test_soc_reference.py) read the same network (about a
minute on 2 cores). It lives here, not in a tests/science/conftest.py, because the integration
tests import their helpers with ``from conftest import ...``.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

import pytest

pytest_plugins = ["helpers.store", "helpers.networks"]
"""Fixtures every test folder shares (tests/helpers/; ``tests`` is on the import path)."""

if TYPE_CHECKING:
    from lifrnn_core.soc import SOCResult

_HOME = tempfile.mkdtemp(prefix="lifrnn-test-home-")
os.environ["LIFRNN_HOME"] = _HOME
for _name in [
    n
    for n in os.environ
    if n.startswith("LIFRNN_")
    and n != "LIFRNN_HOME"
    and not n.startswith("LIFRNN_TEST_")
    and n != "LIFRNN_REQUIRE_SERVICES"
]:
    os.environ.pop(_name)


def pytest_unconfigure(config: object) -> None:
    """Remove the temporary LIFRNN_HOME."""
    import shutil

    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def stroud_build() -> SOCResult:
    """hennequin2014, N = 200, on the documented seed-0 matrix, as a job builds it."""
    from lifrnn.jobs.soc import build_from_spec
    from lifrnn.specs import parse_spec

    spec = parse_spec({"kind": "soc", "initial_draw": "stroud"})
    return build_from_spec(spec, lambda fraction, message: None)
