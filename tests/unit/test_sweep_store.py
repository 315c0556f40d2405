"""Sweeps on the job store (SQLite): every point checked first, all children or none, quotas,
chains over an earlier sweep's networks, cancel and delete."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

import lifrnn.store.sweeps as sweep_store
from lifrnn.specs import parse_spec
from lifrnn.store import Job, Sweep, SweepJob
from lifrnn.store.jobs import (
    DependentsError,
    QuotaExceededError,
    claim_job,
    next_queued_job_id,
    submit_job,
    transition,
)
from lifrnn.store.models import utcnow
from lifrnn.store.sweeps import (
    SweepBusyError,
    cancel_sweep,
    create_sweep,
    delete_sweep,
    plan_sweep,
    sweep_points,
    sweep_progress,
)
from lifrnn.store.users import create_user
from lifrnn.sweeps import SweepDefinition, SweepError

SOC = {"kind": "soc", "n": 40, "radius": 4.0}


@pytest.fixture
def store_settings():
    """Settings of helpers.store's ``store`` for this module."""
    return {"max_sweep_points": 20}


@pytest.fixture
def alice(make_user):
    return make_user("alice", max_queued=5, max_running=1)


def sweep_of(store, session, user, body, default_max_queued=100):
    definition = SweepDefinition.model_validate(body)
    points = plan_sweep(session, store.settings, user, definition)
    return create_sweep(session, user, definition, points, default_max_queued=default_max_queued)


def count(store, model):
    with store.session() as fresh:
        return fresh.scalar(select(func.count()).select_from(model))


def test_a_grid_makes_one_queued_job_per_point_with_its_values(store, session, alice):
    sweep = sweep_of(
        store, session, alice, {"spec": SOC, "grid": {"seed": [0, 1], "radius": [3.5, 4.5]}}
    )
    rows = sweep_points(session, sweep)
    assert [link.values for link, _ in rows] == [
        {"seed": 0, "radius": 3.5},
        {"seed": 0, "radius": 4.5},
        {"seed": 1, "radius": 3.5},
        {"seed": 1, "radius": 4.5},
    ]
    assert [(job.spec["seed"], job.spec["radius"]) for _, job in rows] == [
        (0, 3.5),
        (0, 4.5),
        (1, 3.5),
        (1, 4.5),
    ]
    assert {job.status for _, job in rows} == {"queued"}
    assert {job.tags["sweep"] for _, job in rows} == {sweep.id}
    assert sweep.points == 4 and sweep.axes == {"grid": {"seed": [0, 1], "radius": [3.5, 4.5]}}
    progress = sweep_progress(session, [sweep.id])[sweep.id]
    assert (progress.counts["queued"], progress.total, progress.fraction) == (4, 4, 0.0)


def test_a_bad_point_is_named_and_nothing_is_created(store, session, alice):
    body = {"spec": SOC, "zip": {"seed": [0, 1, 2], "radius": [4.0, -1.0, 4.0]}}
    with pytest.raises(SweepError, match=r"point 1 \(seed=1, radius=-1.0\): radius: .*greater"):
        sweep_of(store, session, alice, body)
    assert count(store, Job) == 0 and count(store, Sweep) == 0


def test_a_failure_midway_leaves_no_sweep_no_job_no_link(store, session, alice, monkeypatch):
    calls = []
    real = sweep_store.param_rows  # called per job, after the jobs' INSERT

    def failing_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_store, "param_rows", failing_third)
    with pytest.raises(RuntimeError):
        sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": [0, 1, 2, 3]}})
    assert len(calls) == 3
    assert (count(store, Job), count(store, Sweep), count(store, SweepJob)) == (0, 0, 0)


def test_a_sweep_enters_the_queue_only_if_all_its_points_fit(store, session, alice):
    sweep = sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": [0, 1, 2]}})
    assert sweep_progress(session, [sweep.id])[sweep.id].counts["queued"] == 3
    with pytest.raises(QuotaExceededError, match="3 points and your queue has room for 2"):
        sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": [3, 4, 5]}})
    assert (count(store, Sweep), count(store, Job)) == (1, 3)  # nothing of the second
    sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": [3, 4]}})  # her 5: full
    with pytest.raises(QuotaExceededError):
        submit_job(session, alice, parse_spec(SOC), default_max_queued=100)


def test_max_running_still_holds_and_other_users_are_served(store, session, alice):
    bob, _ = create_user(session, "bob")
    session.commit()
    sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": list(range(5))}})
    later, _ = submit_job(session, bob, parse_spec(SOC), default_max_queued=100)
    first = next_queued_job_id(session, default_max_running=2)
    assert first is not None and claim_job(session, first, "w1", default_max_running=2)
    # alice runs one (her max_running): bob's job, queued after her five, goes next
    assert next_queued_job_id(session, default_max_running=2) == later.id


def test_more_points_than_the_setting_allows_are_refused(store, session, alice):
    body = {"spec": SOC, "grid": {"seed": list(range(7)), "radius": [3.5, 4.0, 4.5]}}
    with pytest.raises(SweepError, match=r"21 points: .* at most 20 \(LIFRNN_MAX_SWEEP_POINTS\)"):
        sweep_of(store, session, alice, body)


def test_a_chain_runs_over_the_networks_of_an_earlier_sweep(store, session, alice):
    alice.max_queued = 6  # both sweeps wait in her queue
    socs = sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": [0, 1]}})
    fit = {"kind": "fit", "dt": 0.002, "movements": {"duration": 0.1}}
    chained = sweep_of(
        store,
        session,
        alice,
        {"spec": fit, "grid": {"network": {"sweep": socs.id}, "seed": [0, 1]}},
    )
    soc_jobs = [job.id for _, job in sweep_points(session, socs)]
    rows = sweep_points(session, chained)
    assert [link.values["network"] for link, _ in rows] == [
        {"job": soc_jobs[0]},
        {"job": soc_jobs[0]},
        {"job": soc_jobs[1]},
        {"job": soc_jobs[1]},
    ]
    assert {job.status for _, job in rows} == {"waiting"}
    assert [job.parent_job_id for _, job in rows] == [soc_jobs[0]] * 2 + [soc_jobs[1]] * 2
    with pytest.raises(DependentsError):  # the fits read what the SOC sweep makes
        delete_sweep(session, socs, store)


def test_a_chain_names_only_your_own_sweeps(store, session, alice):
    bob, _ = create_user(session, "bob")
    session.commit()
    theirs = sweep_of(store, session, bob, {"spec": SOC, "grid": {"seed": [0]}})
    body = {"spec": {"kind": "fit"}, "grid": {"network": {"sweep": theirs.id}}}
    with pytest.raises(SweepError, match=f"grid.network: no sweep '{theirs.id}' of yours"):
        sweep_of(store, session, alice, body)


def test_cancel_stops_every_unfinished_job(store, session, alice):
    sweep = sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": [0, 1, 2]}})
    [(_, first), (_, second), _] = sweep_points(session, sweep)
    assert claim_job(session, first.id, "w1")
    assert claim_job(session, second.id, "w1")
    assert transition(session, second.id, "succeeded", finished_at=utcnow())
    session.commit()
    assert cancel_sweep(session, sweep) == 2
    session.expire_all()
    statuses = [job.status for _, job in sweep_points(session, sweep)]
    assert statuses == ["cancelling", "succeeded", "cancelled"]
    assert cancel_sweep(session, sweep) == 0  # cancelling stays so, counted no more


def test_delete_refuses_while_jobs_run_then_removes_jobs_and_sweep(store, session, alice):
    sweep = sweep_of(store, session, alice, {"spec": SOC, "grid": {"seed": [0, 1]}})
    [(_, running), _] = sweep_points(session, sweep)
    assert claim_job(session, running.id, "w1")
    with pytest.raises(SweepBusyError, match=running.id):
        delete_sweep(session, sweep, store)
    assert transition(session, running.id, "failed", finished_at=utcnow())
    session.commit()
    assert delete_sweep(session, sweep, store) == 2
    assert (count(store, Job), count(store, Sweep), count(store, SweepJob)) == (0, 0, 0)
