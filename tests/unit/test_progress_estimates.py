"""Honest progress: the SOC and fit estimators, the time left, and the curves a job stores."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from lifrnn.executor import _ProgressWriter
from lifrnn.jobs.progress import CAP, FitProgress, SOCProgress
from lifrnn.specs import parse_spec
from lifrnn.store import Job, JobEvent
from lifrnn.store.jobs import claim_job, submit_job
from lifrnn.store.series import job_series
from lifrnn.store.users import create_user

SPEC = parse_spec({"kind": "soc", "n": 40, "radius": 4.0, "seed": 1})


@pytest.fixture
def running(store) -> str:
    """A job of alice's, running under worker ``w1``."""
    with store.session() as session:
        alice, _ = create_user(session, "alice")
        job, _ = submit_job(session, alice, SPEC, default_max_queued=10)
        claim_job(session, job.id, "w1")
        session.commit()
        return job.id


def creeping_history(iterations: int, target: float) -> list[float]:
    """An abscissa that falls fast, then creeps to the target at iteration ``iterations``."""
    fast = [target + 2.0 * math.exp(-k / 40) for k in range(iterations + 1)]
    creep = [0.02 * (1 - k / iterations) for k in range(iterations + 1)]
    return [a + c - 2.0 * math.exp(-iterations / 40) for a, c in zip(fast, creep, strict=True)]


def test_soc_progress_rises_to_one_only_at_the_target_and_never_goes_back():
    history = creeping_history(400, 0.81)
    pace = SOCProgress(0.81, 10_000, power_law=False)
    fractions = [pace.update(k, history[k]) for k in range(1, 401)]
    assert fractions == sorted(fractions)
    assert max(fractions[:-1]) <= CAP and fractions[-1] == 1.0


def test_a_resumed_soc_progress_goes_on_where_it_stopped():
    history = creeping_history(300, 0.15)
    whole = SOCProgress(0.15, 10_000, power_law=True)
    fractions = [whole.update(k, history[k]) for k in range(1, 301)]
    resumed = SOCProgress(0.15, 10_000, power_law=True)
    for k in range(1, 101):  # what the runner does with a checkpoint's history
        resumed.update(k, history[k])
    assert [resumed.update(k, history[k]) for k in range(101, 301)] == fractions[100:]


def test_a_build_that_never_approaches_its_target_goes_by_its_iteration_limit():
    pace = SOCProgress(-50.0, 1000, power_law=True)
    fractions = [pace.update(k, 0.5 + 1e-3 * (k % 7)) for k in range(1, 101)]
    assert fractions[-1] == pytest.approx(0.1, abs=0.01)


def test_fit_progress_tracks_time_through_setup_evaluations_and_finish():
    """Setup 3 s, L-BFGS iterations of two 1-s evaluations halving the cost from 8e-4 to
    below the 1e-4 tolerance, then 1 s to finish: the fraction tracks elapsed / total."""
    now = [0.0]
    pace = FitProgress(1e-4, 1e-4, 200, clock=lambda: now[0], finish_seconds=1.0)
    seen: list[tuple[float, float]] = []
    now[0] = 3.0
    seen.append((now[0], pace.iteration(0, 8e-4)))
    cost = 8e-4
    for iteration in range(1, 5):
        for _ in range(2):
            seen.append((now[0], pace.evaluation()))
            now[0] += 1.0
        cost /= 2
        seen.append((now[0], pace.iteration(iteration, cost)))
    total = now[0] + 1.0
    assert [f for _, f in seen] == sorted(f for _, f in seen)
    assert max(abs(f - t / total) for t, f in seen) < 0.15
    assert pace.iterations_left() == 0.0


def test_fit_progress_expects_one_more_iteration_when_the_cost_stops_moving():
    pace = FitProgress(1e-8, 1e-4, 200, clock=lambda: 1.0)
    pace.iteration(0, 1.0)
    pace.iteration(1, 0.5)
    pace.iteration(2, 0.5 * (1 - 5e-5))
    assert pace.iterations_left() == 1.0


def test_the_writer_keeps_every_point_then_every_other_and_always_the_last(
    store, running, monkeypatch
):
    monkeypatch.setattr("lifrnn.executor.progress.SERIES_LEVEL", 10)
    now = [0.0]
    writer = _ProgressWriter(store, running, "w1", None, clock=lambda: now[0])
    for step in range(1, 58):
        now[0] = step * 0.1
        writer.point("abscissa", step, 1.0 / step)
        writer(step / 100, f"step {step}")
    writer.point("abscissa", 58, float("nan"))  # not a number: not stored
    writer.close()
    with store.session() as session:
        curve = job_series(session, running)["abscissa"]
    # 1-9 and 10 (10 kept), then every 2nd to 30, every 4th to 68: and the last, 57
    assert curve.steps == [*range(1, 11), *range(12, 31, 2), *range(32, 57, 4), 57]
    assert curve.values == [1.0 / step for step in curve.steps]


def test_a_point_already_stored_is_not_stored_again(store, running):
    for _ in range(2):  # a run that resumed from a checkpoint goes over steps 5-9 again
        writer = _ProgressWriter(store, running, "w1", None)
        for step in range(5, 10):
            writer.point("cost", step, float(step))
        writer.close()
    with store.session() as session:
        assert job_series(session, running)["cost"].steps == [5, 6, 7, 8, 9]
        assert job_series(session, running, ["cost"], after=7)["cost"].steps == [8, 9]
        assert job_series(session, running, ["loss"]) == {}


def test_the_time_left_is_extrapolated_from_the_pace_of_this_run(store, running):
    now = [100.0]
    writer = _ProgressWriter(store, running, "w1", None, clock=lambda: now[0])
    writer(0.2, "resumed at 20 %")  # a resumed run: only what it gains counts
    assert writer.timing(0.2) == (0.0, None)
    now[0] = 110.0
    writer(0.4, "half way to the end of this run")
    assert writer.timing(0.4) == (10.0, pytest.approx(30.0))
    with store.session() as session:
        job = session.get(Job, running)
        assert job.eta_seconds == pytest.approx(30.0, abs=1.0)
        assert job.elapsed_seconds is not None
        last = session.scalars(
            select(JobEvent).where(JobEvent.job_id == running).order_by(JobEvent.id.desc())
        ).first()
        assert (last.elapsed_seconds, last.eta_seconds) == (10.0, 30.0)
