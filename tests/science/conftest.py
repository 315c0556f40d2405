"""Fixtures shared by the science checks: the one full-size (N = 200) hennequin2014 build.

It is built on the documented initial matrix of test_stroud_reference.py (``initial_draw:
"stroud"``, seed 0), through the whole spec path a job takes, once per test run: the step-for-step
comparison with Stroud's code and the reference bands of docs/science.md §2
(test_soc_reference.py) read the same network (about a minute on 2 cores).
"""

from __future__ import annotations

import pytest

from lifrnn.jobs.soc import build_from_spec
from lifrnn.specs import parse_spec
from lifrnn_core.soc import SOCResult


@pytest.fixture(scope="session")
def stroud_build() -> SOCResult:
    """hennequin2014, N = 200, on the documented seed-0 matrix, as a job builds it."""
    spec = parse_spec({"kind": "soc", "initial_draw": "stroud"})
    return build_from_spec(spec, lambda fraction, message: None)
