"""Idle in-process workers back off (lifrnn/executor/pool.py, ``WorkerPool``): an idle server does
not query its database ten times a second per worker, and a job queued through the same process
still starts at once (``notify``)."""

from __future__ import annotations

import itertools
import time

import pytest

import lifrnn.executor.pool as executor


@pytest.fixture
def store_settings():
    """Settings of helpers.store's ``store`` for this module."""
    return {"checkpoint_seconds": 0, "poll_seconds": 0.1}


def test_an_idle_worker_backs_off_and_a_notify_wakes_it_at_once(store, monkeypatch):
    looks: list[float] = []
    real = executor.next_queued_job_id

    def counted(session, max_running):
        looks.append(time.monotonic())
        return real(session, max_running)

    monkeypatch.setattr(executor, "next_queued_job_id", counted)
    pool = executor.WorkerPool(store, size=1)
    pool.start()
    try:
        time.sleep(3.0)
        idle = list(looks)
        # 0.1 s polls without back-off would look 30 times in 3 s; doubling up to its limit
        # (8 polls, 0.8 s) looks about 7 times.
        assert 4 <= len(idle) <= 12, len(idle)
        gaps = [b - a for a, b in itertools.pairwise(idle)]
        assert max(gaps) < 0.8 + 0.5  # never far past the limit (slack for a loaded machine)
        before = len(looks)
        while len(looks) == before:  # just after a look: the next is 0.8 s away
            time.sleep(0.001)
        notified = time.monotonic()
        pool.notify()
        while len(looks) == before + 1 and time.monotonic() < notified + 2.0:
            time.sleep(0.001)
        assert looks[before + 1] - notified < 0.3  # woken at once, not at the next look
    finally:
        pool.stop()
