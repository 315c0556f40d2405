"""Shared test set-up: the local store of every test run lives in a temporary LIFRNN_HOME.

``lifrnn run`` records its jobs in the store under ``LIFRNN_HOME``; without this, the tests
(which run it in subprocesses) would write into the user's real data folder.
"""

from __future__ import annotations

import os
import tempfile

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
