"""Resource limits at submit (issue 13, point 1): estimates from the spec and from what the
store knows of its inputs (also of networks not made yet), the user's own limits before the
deployment's, and refusals that state the estimate and the limit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lifrnn.executor import execute_job
from lifrnn.settings import Settings
from lifrnn.specs import parse_spec
from lifrnn.specs.resources import Estimate, format_bytes
from lifrnn.store import Job
from lifrnn.store.inputs import resolve_inputs
from lifrnn.store.jobs import submit_job
from lifrnn.store.limits import JobLimits, LimitExceededError
from lifrnn.store.users import create_user

FIT = {"movements": {"directions_deg": [0, 90, 180], "duration": 0.1}, "dt": 0.002}


@pytest.fixture
def store_settings():
    """Settings of helpers.store's ``store`` for this module."""
    return {"checkpoint_seconds": 0}


def submit(session, owner, data: dict) -> Job:
    spec = parse_spec(data)
    inputs = resolve_inputs(session, owner, spec)
    job, _ = submit_job(session, owner, spec, default_max_queued=100, inputs=inputs)
    return job


def estimate_of(session, owner, data: dict) -> Estimate:
    spec = parse_spec(data)
    return spec.estimate(resolve_inputs(session, owner, spec).facts)


def test_estimates_grow_with_what_the_spec_asks():
    small = parse_spec({"kind": "soc", "n": 2000}).estimate({})
    double = parse_spec({"kind": "soc", "n": 4000}).estimate({})
    assert 3.5 < double.memory_bytes / small.memory_bytes < 4.5  # n^2 arrays dominate
    assert double.work / small.work == pytest.approx(8.0)  # n^3 per iteration
    fit = {"kind": "fit", "network": {"kind": "soc", "n": 500}}
    longer = {**fit, "movements": {"directions_deg": [0, 180], "duration": 6.0}}
    assert (
        parse_spec(longer).estimate({}).memory_bytes
        > 5 * parse_spec(fit).estimate({}).memory_bytes  # ten times the time samples
    )
    float32 = parse_spec({**longer, "dtype": "float32"}).estimate({})
    assert float32.memory_bytes < parse_spec(longer).estimate({}).memory_bytes


def test_a_chain_not_yet_run_is_estimated_from_its_specs(session):
    """prepare on the network of a fit on the network of a SOC job: none has run, yet the
    prepare's estimate knows n (from the SOC spec), M and T (from the fit spec)."""
    alice, _ = create_user(session, "alice")
    session.commit()
    soc = submit(session, alice, {"kind": "soc", "n": 40, "max_iterations": 3})
    fit = submit(session, alice, {"kind": "fit", "network": {"job": soc.id}, **FIT})
    prepare = {"kind": "prepare", "network": {"job": fit.id}, "spontaneous": 1.0}
    spec = parse_spec(prepare)
    dims = resolve_inputs(session, alice, spec).facts["network"].dims
    assert dims is not None
    assert (dims.n, dims.movements, dims.steps, dims.dt, dims.duration) == (40, 3, 51, 0.002, 0.1)
    shorter = estimate_of(session, alice, {**prepare, "spontaneous": 0.1})
    assert estimate_of(session, alice, prepare).memory_bytes > shorter.memory_bytes
    retrain = {"kind": "retrain", "network": {"job": fit.id}, "directions_deg": [45.0]}
    assert "n=40, M=4 (old and new), T=51" in estimate_of(session, alice, retrain).basis


def test_a_stored_network_is_estimated_from_its_file(store, session):
    alice, _ = create_user(session, "alice")
    session.commit()
    soc = submit(session, alice, {"kind": "soc", "n": 30, "radius": 3.0, "seed": 1})
    execute_job(store, soc.id, worker="test")
    fit = submit(session, alice, {"kind": "fit", "network": {"job": soc.id}, **FIT})
    execute_job(store, fit.id, worker="test")
    session.expire_all()
    assert session.scalar(select(Job.status).where(Job.id == fit.id)) == "succeeded"
    estimate = estimate_of(session, alice, {"kind": "retrain", "network": {"job": fit.id}})
    assert "n=30, M=13 (old and new), T=51" in estimate.basis  # 3 fitted + 10 new by default


def test_the_users_own_limits_come_before_the_deployments(session):
    settings = Settings(max_job_memory_bytes=2**30, max_job_work=1e12)
    alice, _ = create_user(session, "alice")
    bob, _ = create_user(session, "bob")
    bob.max_job_memory = 4 * 2**30
    session.commit()
    assert JobLimits.for_user(settings, alice).memory_bytes == 2**30
    assert JobLimits.for_user(settings, bob).memory_bytes == 4 * 2**30
    assert JobLimits.for_user(settings, bob).work == 1e12  # not overridden: the deployment's
    spec = parse_spec({"kind": "soc", "n": 4000, "max_iterations": 1})
    estimate = spec.estimate({})
    assert 2**30 < estimate.memory_bytes < 4 * 2**30
    with pytest.raises(LimitExceededError) as caught:
        JobLimits.for_user(settings, alice).check(estimate)
    message = str(caught.value)
    assert message.startswith("n, max_iterations: estimated peak memory")
    assert format_bytes(estimate.memory_bytes) in message and "1.0 GiB" in message
    assert "LIFRNN_MAX_JOB_MEMORY_BYTES" in message
    with pytest.raises(LimitExceededError, match=r"estimated work .*LIFRNN_MAX_JOB_WORK"):
        JobLimits.for_user(settings, bob).check(estimate)  # memory fits him; work does not
    bob.max_job_work = 1e13
    JobLimits.for_user(settings, bob).check(estimate)  # both his own: accepted


def test_a_refusal_names_the_stage_that_needs_it():
    """A fit that builds its network inline: the fit's trajectories, not the build, are big."""
    spec = parse_spec(
        {
            "kind": "fit",
            "network": {"kind": "soc", "n": 100},
            "movements": {"directions_deg": [0, 90, 180, 270], "duration": 5.0},
            "dt": 1e-4,
        }
    )
    with pytest.raises(LimitExceededError) as caught:
        JobLimits(memory_bytes=2**30, output_bytes=2**40, work=1e30).check(spec.estimate({}))
    assert str(caught.value).startswith("movements.directions_deg, movements.duration, dt:")
