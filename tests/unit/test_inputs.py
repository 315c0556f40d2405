"""Stored inputs by id (SQLite store, in-process jobs): ownership, checks at submit, waiting
jobs and what deleting a parent may not cut."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from sqlalchemy import select, update

from lifrnn.executor import execute_job
from lifrnn.specs import parse_spec
from lifrnn.store import Job, JobInput
from lifrnn.store.inputs import InputError, resolve_inputs
from lifrnn.store.jobs import (
    DependentsError,
    QuotaExceededError,
    delete_job,
    release_waiting,
    request_cancel,
    submit_job,
)
from lifrnn.store.uploads import receive_chunks, store_upload

SOC = {"kind": "soc", "n": 30, "radius": 3.0, "seed": 1}
FIT = {"movements": {"directions_deg": [0, 180], "duration": 0.1}, "dt": 0.002}


@pytest.fixture
def store_settings():
    """Settings of helpers.store's ``store`` for this module."""
    return {"checkpoint_seconds": 0}


@pytest.fixture
def users(make_user):
    return make_user("alice"), make_user("bob", max_queued=4)


def upload(store, session, owner, array: np.ndarray, name: str = "W.npy") -> str:
    buffer = io.BytesIO()
    np.save(buffer, array)
    received = receive_chunks([buffer.getvalue()], name, 1 << 30)
    return store_upload(session, store, owner, received, 1 << 40).id


def submit(session, owner, data: dict) -> Job:
    spec = parse_spec(data)
    job, _ = submit_job(
        session, owner, spec, default_max_queued=100, inputs=resolve_inputs(session, owner, spec)
    )
    return job


def refused(session, owner, data: dict) -> str:
    with pytest.raises(InputError) as caught:
        resolve_inputs(session, owner, parse_spec(data))
    return str(caught.value)


def run(store, job_id: str) -> str:
    """Run the job if it can be claimed; its status afterwards."""
    execute_job(store, job_id, worker="test")
    with store.session() as session:
        return session.scalar(select(Job.status).where(Job.id == job_id)) or ""


def test_another_users_file_answers_like_a_missing_one(store, session, users):
    alice, bob = users
    mine = upload(store, session, alice, np.zeros((30, 30)))
    missing = str(uuid.uuid4())
    theirs = refused(session, bob, {**SOC, "initial_weights": mine})
    nothing = refused(session, bob, {**SOC, "initial_weights": missing})
    assert theirs == nothing.replace(missing, mine)
    assert theirs.startswith(f"initial_weights: no file '{mine}' of yours")
    assert "/" not in theirs.split("of yours")[0]  # no server path, no shape leaked


def test_another_users_network_and_job_are_not_yours(store, session, users):
    alice, bob = users
    parent = submit(session, alice, SOC)
    assert run(store, parent.id) == "succeeded"
    network_id = session.scalar(select(JobInput.network_id)) or ""
    from lifrnn.store import Network

    network_id = session.scalar(select(Network.id).where(Network.job_id == parent.id))
    fit = {"kind": "fit", **FIT}
    assert refused(session, bob, {**fit, "network": network_id}) == (
        f"network: no network '{network_id}' of yours (a network id from GET /networks, an "
        'uploaded network file\'s id, or {"job": "<job id>"})'
    )
    assert refused(session, bob, {**fit, "network": {"job": parent.id}}) == (
        f"network: no job '{parent.id}' of yours"
    )
    assert resolve_inputs(session, alice, parse_spec({**fit, "network": network_id}))


def test_wrong_shapes_and_kinds_are_refused_at_submit(store, session, users):
    alice, _ = users
    big = upload(store, session, alice, np.zeros((31, 31)))
    assert "holds a (31, 31) W; the spec says n=30" in refused(
        session, alice, {**SOC, "initial_weights": big}
    )
    targets = upload(store, session, alice, np.zeros((2, 10, 2)), "targets.npy")
    message = refused(
        session,
        alice,
        {
            "kind": "fit",
            "network": {**SOC},
            "movements": {"directions_deg": [0, 180], "duration": 0.1, "targets_file": targets},
            "dt": 0.002,
        },
    )
    assert "movements.targets_file: file 'targets.npy'" in message
    assert (
        "holds shape (2, 10, 2); this fit needs (movements, time, outputs) = (2, 51, 2)" in message
    )
    soc = submit(session, alice, SOC)
    assert run(store, soc.id) == "succeeded"
    assert "this job needs a fitted one" in refused(
        session, alice, {"kind": "prepare", "network": {"job": soc.id}}
    )
    assert "is not a network (a .safetensors file with W)" in refused(
        session, alice, {"kind": "fit", **FIT, "network": big}
    )
    from lifrnn.files import safetensors_bytes

    bare = receive_chunks(
        [safetensors_bytes({"W": np.zeros((30, 30))}, {})], "W.safetensors", 1 << 30
    )
    bare_id = store_upload(session, store, alice, bare, 1 << 40).id
    assert "is not a lifrnn network (no 'n_excitatory' metadata)" in refused(
        session, alice, {"kind": "fit", **FIT, "network": bare_id}
    )


def test_a_chain_waits_and_runs_in_order(store, session, users):
    alice, _ = users
    soc = submit(session, alice, SOC)
    fit = submit(session, alice, {"kind": "fit", **FIT, "network": {"job": soc.id}})
    assert (soc.status, fit.status) == ("queued", "waiting")
    assert fit.parent_job_id == soc.id
    assert run(store, fit.id) == "waiting"  # not claimable until its parent succeeded
    assert run(store, soc.id) == "succeeded"
    session.expire_all()
    fit = session.get(Job, fit.id)
    assert fit.status == "queued" and fit.parent_network_id is not None
    recorded = session.scalar(select(JobInput).where(JobInput.job_id == fit.id))
    assert recorded.network_id == fit.parent_network_id and recorded.artifact_id is not None
    assert run(store, fit.id) == "succeeded"


def test_a_failed_parent_fails_every_job_waiting_down_the_chain(store, session, users):
    alice, _ = users
    soc = submit(session, alice, {**SOC, "max_iterations": 1})  # cannot converge: fails
    fit = submit(session, alice, {"kind": "fit", **FIT, "network": {"job": soc.id}})
    prepare = submit(session, alice, {"kind": "prepare", "network": {"job": fit.id}})
    assert run(store, soc.id) == "failed"
    session.expire_all()
    assert session.get(Job, fit.id).error == f"parent job {soc.id} failed"
    assert session.get(Job, prepare.id).error == f"parent job {fit.id} failed"
    assert "job" in refused(session, alice, {"kind": "prepare", "network": {"job": soc.id}})


def test_a_cancelled_parent_and_a_cancelled_child(store, session, users):
    alice, _ = users
    soc = submit(session, alice, SOC)
    fit = submit(session, alice, {"kind": "fit", **FIT, "network": {"job": soc.id}})
    request_cancel(session, fit)
    assert session.get(Job, fit.id).status == "cancelled"
    other = submit(session, alice, {"kind": "fit", **FIT, "network": {"job": soc.id}})
    request_cancel(session, session.get(Job, soc.id))
    session.expire_all()
    assert session.get(Job, other.id).error == f"parent job {soc.id} was cancelled"


def test_a_parent_that_finished_unnoticed_is_settled_by_the_sweep(store, session, users):
    alice, _ = users
    soc = submit(session, alice, SOC)
    fit = submit(session, alice, {"kind": "fit", **FIT, "network": {"job": soc.id}})
    session.execute(update(Job).where(Job.id == soc.id).values(status="failed"))
    session.commit()
    assert release_waiting(session) == [fit.id]
    session.expire_all()
    assert session.get(Job, fit.id).status == "failed"


def test_waiting_jobs_count_against_the_queue_quota(store, session, users):
    _, bob = users
    soc = submit(session, bob, SOC)
    for _ in range(3):
        submit(session, bob, {"kind": "fit", **FIT, "network": {"job": soc.id}})
    with pytest.raises(QuotaExceededError, match="4 queued or waiting jobs"):
        submit(session, bob, SOC)


def test_deleting_a_parent_that_others_read_is_refused_naming_them(store, session, users):
    alice, _ = users
    soc = submit(session, alice, SOC)
    fit = submit(session, alice, {"kind": "fit", **FIT, "network": {"job": soc.id}})
    assert run(store, soc.id) == "succeeded"
    session.expire_all()
    with pytest.raises(DependentsError, match=fit.id):
        delete_job(session, session.get(Job, soc.id), store)
    assert run(store, fit.id) == "succeeded"
    with pytest.raises(DependentsError):  # a finished child still needs its lineage
        delete_job(session, session.get(Job, soc.id), store)
    delete_job(session, session.get(Job, fit.id), store)
    delete_job(session, session.get(Job, soc.id), store)
    assert session.scalar(select(Job.id)) is None


def test_identical_computations_write_identical_files(tmp_path):
    from lifrnn.jobs import JobContext, run_job

    spec = parse_spec({"kind": "fit", **FIT, "network": SOC})
    first = run_job(spec, JobContext(out_dir=tmp_path / "a"))
    second = run_job(spec, JobContext(out_dir=tmp_path / "b"))
    assert first.status == second.status == "succeeded"
    assert set(first.artifacts) == {
        "spec.json",
        "network.safetensors",
        "targets.safetensors",
        "fit.png",
    }
    for name in first.artifacts:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_leftovers_of_dead_jobs_are_removed(store, session, users):
    import os
    import time

    from lifrnn.executor import SCRATCH_GRACE_SECONDS, collect_leftovers
    from lifrnn.store.cas import checkpoint_prefix

    alice, _ = users
    dead = submit(session, alice, SOC)
    live = submit(session, alice, SOC)
    session.execute(update(Job).where(Job.id == dead.id).values(status="failed"))
    session.commit()
    scratch = store.settings.scratch
    old = time.time() - SCRATCH_GRACE_SECONDS - 10
    for job in (dead, live):
        folder = scratch / f"{job.id}-abc"
        folder.mkdir(parents=True)
        os.utime(folder, (old, old))
        store.objects.put_bytes(f"{checkpoint_prefix(job.id)}fit.safetensors", b"state")
    starting = scratch / f"{uuid.uuid4()}-new"  # a job that started a moment ago
    starting.mkdir()
    assert collect_leftovers(store) == 2  # the dead job's folder and checkpoints
    assert not (scratch / f"{dead.id}-abc").exists() and starting.exists()
    assert (scratch / f"{live.id}-abc").exists()  # queued: it may still resume
    assert list(store.objects.iter_keys("checkpoints/")) == [
        f"{checkpoint_prefix(live.id)}fit.safetensors"
    ]
