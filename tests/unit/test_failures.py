"""Failures a user can act on: numerical ones name what failed and what to change, bugs keep
their traceback (in the log and in the job's ``error_detail``), our own checks stay short."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from lifrnn import jobs
from lifrnn.executor import execute_job
from lifrnn.jobs import JobContext, run_job
from lifrnn.settings import Settings
from lifrnn.specs import parse_spec
from lifrnn.store import Job, Store
from lifrnn.store.jobs import submit_job
from lifrnn.store.users import create_user

SPEC = parse_spec({"kind": "soc", "n": 20, "radius": 2.0})


def singular(spec, context):
    np.linalg.inv(np.zeros((3, 3)))


def bad_shape_inside_numpy(spec, context):
    np.zeros(3).reshape(2, 2)


def our_check(spec, context):
    raise ValueError("initial_weights: expected a .npy file")


def a_bug(spec, context):
    raise RuntimeError("something we did not foresee")


@pytest.mark.parametrize(
    ("runner", "starts", "detailed"),
    [
        (singular, "numerical failure (LinAlgError: Singular matrix)", True),
        (bad_shape_inside_numpy, "numerical failure (ValueError: cannot reshape", True),
        (our_check, "initial_weights: expected a .npy file", False),
        (a_bug, "internal error: RuntimeError: something we did not foresee", True),
    ],
)
def test_failures_say_what_to_do(tmp_path, monkeypatch, runner, starts, detailed):
    monkeypatch.setitem(jobs.RUNNERS, "soc", runner)
    result = run_job(SPEC, JobContext(out_dir=tmp_path))
    assert result.status == "failed" and (result.error or "").startswith(starts)
    if starts.startswith("numerical"):
        assert "smaller `radius` or `rate`" in (result.error or "")  # the soc spec's hint
    assert (result.error_detail is not None) == detailed
    if detailed:
        assert "Traceback" in (result.error_detail or "") and runner.__name__ in (
            result.error_detail or ""
        )


def test_the_traceback_is_kept_on_the_job(tmp_path, monkeypatch):
    store = Store(Settings(home=tmp_path))
    store.migrate()
    with store.session() as session:
        user, _ = create_user(session, "u")
        session.commit()
        job, _ = submit_job(session, user, SPEC, default_max_queued=10)
    monkeypatch.setitem(jobs.RUNNERS, "soc", singular)
    execute_job(store, job.id, worker="w")
    with store.session() as session:
        row = session.get(Job, job.id)
        assert row.status == "failed" and "inv" in (row.error_detail or "")
    store.dispose()


def test_an_soc_build_cut_short_says_how_many_more_iterations_it_needs():
    from lifrnn.jobs.soc import not_converged_message

    falling = list(np.linspace(10.0, 0.5, 101))  # 0.095 per iteration, 0.35 to go
    message = not_converged_message(falling, 0.15)
    assert "spectral abscissa 0.5000 > target 0.15 after 100 iterations" in message
    assert "96% of the way from 10" in message
    assert "needs about 4 more iterations: raise max_iterations to about 104" in message


def test_an_soc_build_on_a_plateau_is_told_that_more_iterations_will_not_help():
    from lifrnn.jobs.soc import not_converged_message

    plateau = [*np.linspace(4.0, 0.9, 50), *[0.9] * 200]
    message = not_converged_message(plateau, 0.81)
    assert "stopped falling" in message and "more iterations will not help" in message
    assert "a smaller rate" in message and "accept target_abscissa >= 0.9" in message
    job = run_job(
        parse_spec({"kind": "soc", "n": 20, "radius": 2.0, "max_iterations": 3}),
        JobContext(out_dir=Path(tempfile.mkdtemp())),
    )
    assert job.status == "failed" and "raise max_iterations to about" in job.error
