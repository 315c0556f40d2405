"""The job store on SQLite: migrations, status machine, claims, stale jobs, CAS and deletion."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, update

from lifrnn.specs import parse_spec
from lifrnn.store import Artifact, ArtifactStore, Base, Job, JobEvent, Network, User
from lifrnn.store.cas import blob_key
from lifrnn.store.jobs import (
    IdempotencyConflictError,
    JobQuery,
    MetricFilterError,
    QuotaExceededError,
    claim_job,
    delete_job,
    list_jobs,
    next_queued_job_id,
    parse_metric_filter,
    request_cancel,
    requeue_stale,
    submit_job,
    transition,
)
from lifrnn.store.models import utcnow
from lifrnn.store.objects import FileObjectStore
from lifrnn.store.status import TERMINAL, TRANSITIONS, TransitionError, can_transition
from lifrnn.store.users import create_user, ensure_local_user, hash_token, user_for_token

SPEC = parse_spec({"kind": "soc", "n": 40, "radius": 4.0, "seed": 1})


@pytest.fixture
def alice(make_user):
    return make_user("alice", max_queued=3)


def events_of(session, job_id):
    return [
        e.status
        for e in session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "status")
        )
    ]


def test_migrations_create_exactly_the_models(store):
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_status_machine_finished_jobs_never_move_again():
    assert {"succeeded", "failed", "cancelled"} == TERMINAL
    for status in TERMINAL:
        assert all(not can_transition(status, target) for target in TRANSITIONS)
    assert can_transition("queued", "running") and not can_transition("queued", "succeeded")
    assert can_transition("running", "cancelling") and can_transition("cancelling", "cancelled")


def test_every_transition_is_recorded_and_illegal_ones_refused(session, alice):
    job, created = submit_job(session, alice, SPEC, default_max_queued=10)
    assert created and job.status == "queued"
    assert not transition(session, job.id, "succeeded")  # queued -> succeeded is not allowed
    assert claim_job(session, job.id, "w1")
    assert not claim_job(session, job.id, "w2")  # only one worker gets a job
    assert transition(session, job.id, "succeeded", finished_at=utcnow())
    session.commit()
    assert not transition(session, job.id, "running")
    assert events_of(session, job.id) == ["queued", "running", "succeeded"]
    session.refresh(job)
    assert (job.status, job.worker, job.attempts) == ("succeeded", "w1", 1)


def test_cancel_queued_now_running_later_finished_never(session, alice):
    queued, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    assert request_cancel(session, queued).status == "cancelled"
    running, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    claim_job(session, running.id, "w1")
    session.refresh(running)
    assert request_cancel(session, running).status == "cancelling"
    transition(session, running.id, "cancelled")
    session.commit()
    session.refresh(running)
    with pytest.raises(TransitionError):
        request_cancel(session, running)
    assert events_of(session, running.id) == ["queued", "running", "cancelling", "cancelled"]


def test_stale_running_job_is_requeued_then_given_up(session, alice):
    job, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    for attempt in (1, 2):
        assert claim_job(session, job.id, f"w{attempt}")
        old = utcnow() - timedelta(seconds=60)
        session.execute(update(Job).where(Job.id == job.id).values(heartbeat_at=old))
        session.commit()
        assert requeue_stale(session, stale_after_seconds=30, max_attempts=2) == [job.id]
        session.refresh(job)
    assert (job.status, job.attempts) == ("failed", 2)
    assert "gave up after 2 attempts" in (job.error or "")
    assert events_of(session, job.id) == ["queued", "running", "queued", "running", "failed"]


def test_fresh_heartbeat_is_left_alone(session, alice):
    job, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    claim_job(session, job.id, "w1")
    assert requeue_stale(session, stale_after_seconds=30, max_attempts=3) == []


def test_a_big_soc_build_has_its_own_heartbeat_grace(session, alice):
    """One Schur form of an n=2500 matrix holds the interpreter for tens of seconds: the job's
    heartbeat may be late for longer than the deployment's 30 s before it counts as lost."""
    big, _ = submit_job(
        session, alice, parse_spec({"kind": "soc", "n": 2500}), default_max_queued=10
    )
    small, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    assert big.heartbeat_grace_seconds is not None and big.heartbeat_grace_seconds > 120
    assert small.heartbeat_grace_seconds is None or small.heartbeat_grace_seconds < 30
    for job in (big, small):
        assert claim_job(session, job.id, "w1")
    minute_ago = utcnow() - timedelta(seconds=60)
    session.execute(update(Job).values(heartbeat_at=minute_ago))
    session.commit()
    assert requeue_stale(session, stale_after_seconds=30, max_attempts=3) == [small.id]
    late = utcnow() - timedelta(seconds=big.heartbeat_grace_seconds + 5)
    session.execute(update(Job).where(Job.id == big.id).values(heartbeat_at=late))
    session.commit()
    assert requeue_stale(session, stale_after_seconds=30, max_attempts=3) == [big.id]


def test_quota_and_running_limit(session, alice):
    for _ in range(3):
        submit_job(session, alice, SPEC, default_max_queued=10)
    with pytest.raises(QuotaExceededError, match="3 queued or waiting jobs"):
        submit_job(session, alice, SPEC, default_max_queued=10)
    first = next_queued_job_id(session, default_max_running=1)
    assert first is not None and claim_job(session, first, "w1")
    assert next_queued_job_id(session, default_max_running=1) is None
    assert next_queued_job_id(session, default_max_running=2) is not None


def test_idempotency_key_returns_the_same_job(session, alice):
    first, created = submit_job(session, alice, SPEC, default_max_queued=10, idempotency_key="k")
    again, created_again = submit_job(
        session, alice, SPEC, default_max_queued=10, idempotency_key="k"
    )
    assert created and not created_again and again.id == first.id
    other = parse_spec({"kind": "soc", "n": 41, "radius": 4.0})
    with pytest.raises(IdempotencyConflictError):
        submit_job(session, alice, other, default_max_queued=10, idempotency_key="k")


def test_tokens_are_stored_hashed(session, alice):
    user, token = create_user(session, "bob")
    session.commit()
    assert user_for_token(session, token).id == user.id
    assert user_for_token(session, token + "x") is None
    stored = session.execute(select(Artifact)).all()  # no plain token anywhere
    assert stored == []
    assert len(hash_token(token)) == 64


def test_local_user_token_file_is_private(session, tmp_path):
    path = tmp_path / "token"
    user = ensure_local_user(session, path)
    session.commit()
    assert path.stat().st_mode & 0o777 == 0o600
    assert user_for_token(session, path.read_text().strip()).id == user.id
    ensure_local_user(session, path)  # a second start keeps the file
    assert user_for_token(session, path.read_text().strip()).id == user.id


def test_metric_filters_parse_and_select(session):
    assert parse_metric_filter("r2_min>=0.99").op == ">="
    assert parse_metric_filter("iterations = 5").op == "=="
    for bad in ("r2_min", "r2 >> 1", "x>=abc", "x>=nan", "$.x>=1"):
        with pytest.raises(MetricFilterError):
            parse_metric_filter(bad)
    carol, _ = create_user(session, "carol")
    for value in [0.5, 0.995, "text", None]:
        job, _ = submit_job(session, carol, SPEC, default_max_queued=10)
        job.metrics = {"r2_min": value}
    session.commit()
    query = JobQuery(owner_id=carol.id, metrics=(parse_metric_filter("r2_min>=0.99"),))
    jobs, total = list_jobs(session, query)
    assert total == 1 and jobs[0].metrics == {"r2_min": 0.995}
    _, total_all = list_jobs(session, JobQuery(owner_id=carol.id, limit=1))
    assert total_all == 4


def test_cas_deduplicates_and_writes_atomically(tmp_path):
    cas = ArtifactStore(FileObjectStore(tmp_path / "cas"))
    first = tmp_path / "a.bin"
    first.write_bytes(b"weights")
    sha, size = cas.put_file(first, "network.safetensors")
    again, _ = cas.put_bytes(b"weights", "other.safetensors")
    assert again == sha and size == 7
    key = blob_key(sha, "network.safetensors")
    assert (tmp_path / "cas" / sha[:2] / f"{sha}.safetensors").read_bytes() == b"weights"
    assert list(cas.blobs()) == [key]
    assert not [p for p in (tmp_path / "cas").rglob(".*")]  # no temporary files left
    assert cas.delete(key) and not cas.exists(key) and not cas.delete(key)


def test_deleting_a_job_collects_only_unreferenced_blobs(store, session, alice):
    # two jobs, one blob shared between them
    shared, _ = store.artifacts.put_bytes(b"shared")
    own, _ = store.artifacts.put_bytes(b"own")
    jobs = []
    for blobs in ([shared, own], [shared]):
        job, _ = submit_job(session, alice, SPEC, default_max_queued=10)
        for index, sha in enumerate(blobs):
            session.add(
                Artifact(
                    job_id=job.id,
                    owner_id=alice.id,
                    name=f"f{index}",
                    media_type="application/octet-stream",
                    size=1,
                    sha256=sha,
                )
            )
        jobs.append(job)
    session.commit()
    assert delete_job(session, jobs[0], store) == 1
    assert store.artifacts.exists(shared) and not store.artifacts.exists(own)
    assert session.get(Job, jobs[0].id) is None
    assert session.scalars(select(JobEvent).where(JobEvent.job_id == jobs[0].id)).all() == []
    assert delete_job(session, jobs[1], store) == 1
    assert not store.artifacts.exists(shared)


def test_running_job_cannot_be_deleted(store, session, alice):
    job, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    claim_job(session, job.id, "w1")
    session.refresh(job)
    with pytest.raises(TransitionError):
        delete_job(session, job, store)


def test_claim_checks_the_running_quota_again(session, alice):
    """Two workers may both see alice under her limit; the claim itself decides."""
    session.execute(update(User).where(User.id == alice.id).values(max_running=1))
    session.commit()
    first, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    second, _ = submit_job(session, alice, SPEC, default_max_queued=10)
    assert claim_job(session, first.id, "w1", default_max_running=5, task_id="t-1")
    assert not claim_job(session, second.id, "w2", default_max_running=5)
    assert session.get(Job, second.id).status == "queued"
    assert session.get(Job, first.id).task_id == "t-1"
    assert claim_job(session, second.id, "w2")  # without the check (lifrnn run), as before


def test_a_result_whose_final_status_did_not_apply_leaves_nothing(store, monkeypatch):
    """The race of issue 13: the job changed hands between the worker's check and its final
    update; the artifacts and network rows of that attempt must not stay."""
    from lifrnn import executor

    with store.session() as session:
        user, _ = create_user(session, "racer")
        session.commit()
        job, _ = submit_job(session, user, SPEC, default_max_queued=10)
    monkeypatch.setattr("lifrnn.executor.finish.transition", lambda *args, **kwargs: False)
    result = executor.execute_job(store, job.id, worker="w1")
    assert result is not None and result.status == "succeeded"  # computed, but not recorded
    with store.session() as session:
        assert session.scalars(select(Artifact).where(Artifact.job_id == job.id)).all() == []
        assert session.scalars(select(Network).where(Network.job_id == job.id)).all() == []
        assert session.get(Job, job.id).status == "running"  # nothing of the lost attempt


def test_an_hours_progress_keeps_a_bounded_history(store, alice):
    """Reports every 0.5 s for an hour: every one of the first minute, then one per 10 s, and
    always the last, stay in the history; the row always has the newest."""
    from lifrnn.executor import _ProgressWriter

    with store.session() as session:
        job, _ = submit_job(session, alice, SPEC, default_max_queued=10)
        claim_job(session, job.id, "w1")
    now = [0.0]
    writer = _ProgressWriter(store, job.id, "w1", None, clock=lambda: now[0])
    for step in range(7200):
        now[0] = step * 0.5
        writer(step / 7200, f"step {step}")
    writer(1.0, "done")
    with store.session() as session:
        kept = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job.id, JobEvent.type == "progress")
        ).all()
        assert session.get(Job, job.id).message == "done"
    assert 400 < len(kept) < 2000
    assert kept[0].message == "step 0" and kept[-1].message == "done"
    late = [
        event
        for event in kept
        if event.message.startswith("step ") and int(event.message[5:]) > 120
    ]
    assert len(late) == pytest.approx((7200 - 120) / 20, abs=2)  # one per 10 s after a minute
