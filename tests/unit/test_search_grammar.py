"""Search over jobs on SQLite: the filter grammar, its errors with positions, each operator,
params, metrics (indexed and reduced lists), tags, the job's own fields, ordering, and the
flattening and backfill behind them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

from lifrnn.specs import parse_spec
from lifrnn.store import Job, JobMetric, JobParam, SearchError
from lifrnn.store.db import alembic_config
from lifrnn.store.flatten import flatten_metrics, flatten_params
from lifrnn.store.jobs import JobQuery, claim_job, label_job, list_jobs, submit_job, transition
from lifrnn.store.models import utcnow
from lifrnn.store.search import compile_filter, compile_order, record_metrics
from lifrnn.store.users import create_user


@pytest.fixture
def alice(make_user):
    return make_user("alice", max_queued=100)


def run(session, owner, spec, metrics=None, **labels):
    """A job of ``spec`` submitted, claimed and succeeded with ``metrics``, as the executor
    records it."""
    job, _ = submit_job(session, owner, parse_spec(spec), default_max_queued=100)
    if labels:
        label_job(session, job, labels)
    if metrics is not None:
        assert claim_job(session, job.id, "w")
        transition(session, job.id, "succeeded", finished_at=utcnow(), metrics=metrics)
        record_metrics(session, job.id, metrics)
        session.commit()
    return job


def search(session, owner, filter=None, order_by=None):
    jobs, total = list_jobs(
        session, JobQuery(owner_id=owner.id, filter=filter, order_by=order_by, limit=100)
    )
    assert total == len(jobs)
    return [job.name for job in jobs]


@pytest.fixture
def runs(session, alice):
    """Three soc runs and a fit-like metrics shape; names a, b, c (c newest)."""
    run(
        session,
        alice,
        {"kind": "soc", "n": 40, "radius": 4.0, "seed": 0},
        {"spectral_abscissa": -1.5, "iterations": 30, "r2": [0.9, 0.99]},
        name="a",
        tags={"project": "reach", "round": "1"},
    )
    run(
        session,
        alice,
        {"kind": "soc", "n": 60, "radius": 8.0, "seed": 1, "method": "kao2021"},
        {"spectral_abscissa": -0.5, "iterations": 300, "r2": [0.95, 0.97]},
        name="b",
        tags={"project": "reach", "round": "2"},
    )
    run(session, alice, {"kind": "soc", "n": 40, "radius": 6.0, "seed": 2}, name="c")
    return alice


# -- flattening --------------------------------------------------------------------------------


def test_params_are_the_spec_with_dotted_keys_and_lists_as_values():
    flat = flatten_params(
        {"n": 40, "network": {"seed": 3}, "movements": {"directions_deg": [0, 9]}}
    )
    assert flat == {"n": 40, "network.seed": 3, "movements.directions_deg": [0, 9]}


def test_metric_lists_are_indexed_and_reduced():
    flat = flatten_metrics({"controllers": {"lqr": {"motor_r2": [0.5, 1.0]}}, "cost": 2})
    assert flat["controllers.lqr.motor_r2.0"] == 0.5
    assert flat["controllers.lqr.motor_r2.1"] == 1.0
    assert flat["controllers.lqr.motor_r2.min"] == 0.5
    assert flat["controllers.lqr.motor_r2.max"] == 1.0
    assert flat["controllers.lqr.motor_r2.mean"] == 0.75
    assert flat["cost"] == 2


def test_a_long_history_keeps_only_its_reductions():
    flat = flatten_metrics({"history": list(range(100))})
    assert "history.0" not in flat
    assert flat["history.max"] == 99


def test_params_are_written_with_the_job_and_metrics_with_its_result(session, alice):
    job = run(session, alice, {"kind": "soc", "n": 40}, {"abscissa": -1.0, "r2": [0.5, 0.7]})
    params = dict(
        session.execute(select(JobParam.key, JobParam.num).where(JobParam.job_id == job.id)).all()
    )
    assert params["n"] == 40.0
    metrics = dict(
        session.execute(
            select(JobMetric.key, JobMetric.value).where(JobMetric.job_id == job.id)
        ).all()
    )
    assert metrics == {
        "abscissa": -1.0,
        "r2.0": 0.5,
        "r2.1": 0.7,
        "r2.min": 0.5,
        "r2.max": 0.7,
        "r2.mean": 0.6,
    }


# -- the grammar's errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "token"),
    [
        ("params.n >> 3", 11, ">"),
        ("params.n = ", 12, ""),
        ("foo = 3", 1, "foo"),
        ("metrics.cost = 'low'", 16, "'low'"),
        ("params.n = 3 and", 17, ""),
        ("params.n = 3 $", 14, "$"),
        ("(kind = 'soc'", 14, ""),
        ("kind = 3", 8, "3"),
        ("created > 'yesterday'", 11, "'yesterday'"),
        ("params.n like 3", 15, "3"),
        ("metrics.cost < 1e999", 16, "1e999"),
    ],
)
def test_a_bad_filter_names_the_token_and_its_position(text, position, token):
    with pytest.raises(SearchError) as caught:
        compile_filter(text, "sqlite")
    assert (caught.value.position, caught.value.token) == (position, token)
    assert f"position {position}" in str(caught.value)


def test_a_bad_order_names_the_token():
    with pytest.raises(SearchError) as caught:
        compile_order("metrics.cost upward", "sqlite")
    assert (caught.value.position, caught.value.token) == (14, "upward")


# -- each operator -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("params.n = 40", ["c", "a"]),
        ("params.n == 40", ["c", "a"]),
        ("params.n != 40", ["b"]),
        ("params.radius < 6", ["a"]),
        ("params.radius <= 6", ["c", "a"]),
        ("params.radius > 6", ["b"]),
        ("params.radius >= 6", ["c", "b"]),
        ("params.method = 'kao2021'", ["b"]),
        ("params.method like 'kao%'", ["b"]),
        ("metrics.iterations >= 100", ["b"]),
        ("metrics.r2.min >= 0.95", ["b"]),
        ("metrics.r2.1 > 0.98", ["a"]),
        ("metrics.r2.mean > 0.9", ["b", "a"]),
        ("tags.project = 'reach'", ["b", "a"]),
        ("tags.round != '1'", ["b"]),
        ("name like 'b%'", ["b"]),
        ("kind = 'soc' and status = 'queued'", ["c"]),
        ("params.n = 40 and metrics.spectral_abscissa < -1", ["a"]),
        ("params.n = 60 or params.seed = 2", ["c", "b"]),
        ("(params.n = 60 or params.seed = 2) and tags.project = 'reach'", ["b"]),
        ("PARAMS.n = 40", None),
    ],
)
def test_each_operator(session, runs, text, names):
    if names is None:
        with pytest.raises(SearchError):
            search(session, runs, text)
        return
    assert search(session, runs, text) == names


def test_a_job_without_the_field_never_matches(session, runs):
    assert search(session, runs, "metrics.iterations != 30") == ["b"]  # c has no metrics


def test_created_compares_with_an_iso_time(session, runs):
    future = (utcnow() + timedelta(hours=1)).isoformat()
    assert search(session, runs, f"created < '{future}'") == ["c", "b", "a"]
    assert search(session, runs, f"created > '{future}'") == []


def test_another_users_jobs_never_match(session, runs):
    bob, _ = create_user(session, "bob")
    session.commit()
    run(session, bob, {"kind": "soc", "n": 40}, {"iterations": 1}, name="bobs")
    assert search(session, runs, "params.n = 40") == ["c", "a"]
    assert search(session, bob, "params.n = 40") == ["bobs"]


# -- ordering ----------------------------------------------------------------------------------


def test_order_by_a_metric_either_way_with_missing_values_last(session, runs):
    assert search(session, runs, order_by="metrics.iterations asc") == ["a", "b", "c"]
    assert search(session, runs, order_by="metrics.iterations desc") == ["b", "a", "c"]


def test_order_by_params_tags_and_columns(session, runs):
    assert search(session, runs, order_by="params.radius") == ["a", "c", "b"]
    assert search(session, runs, order_by="tags.round desc") == ["b", "a", "c"]
    assert search(session, runs, order_by="name desc") == ["c", "b", "a"]
    assert search(session, runs, order_by="created asc") == ["a", "b", "c"]


def test_order_by_several_keys(session, runs):
    assert search(session, runs, order_by="params.n asc, params.seed desc") == ["c", "a", "b"]


def test_filter_and_order_together(session, runs):
    found = search(session, runs, "params.n = 40 or params.n = 60", "metrics.r2.min desc")
    assert found == ["b", "a", "c"]


# -- store behaviour ---------------------------------------------------------------------------


def test_labels_change_without_touching_the_spec(session, runs):
    job = session.scalar(select(Job).where(Job.name == "a"))
    digest = job.spec_sha256
    label_job(session, job, {"tags": {"project": "arm"}, "note": "rerun"})
    assert (job.name, job.tags, job.note, job.spec_sha256) == (
        "a",
        {"project": "arm"},
        "rerun",
        digest,
    )
    assert search(session, runs, "tags.project = 'arm'") == ["a"]


def test_deleting_a_job_removes_its_search_rows(session, store, runs):
    from lifrnn.store.jobs import delete_job

    job = session.scalar(select(Job).where(Job.name == "a"))
    delete_job(session, job, store)
    assert session.scalar(select(JobParam).where(JobParam.job_id == job.id)) is None
    assert session.scalar(select(JobMetric).where(JobMetric.job_id == job.id)) is None


def test_the_migration_backfills_existing_jobs(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0003")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, name, role, created_at) "
                "VALUES (1, 'x', 'user', '2026-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO jobs (id, owner_id, kind, spec, spec_sha256, status, progress, "
                "message, queued_at, attempts, code_version, metrics) VALUES ('j1', 1, 'fit', "
                ":spec, 'h', 'succeeded', 1, '', '2026-01-01', 1, '', :metrics)"
            ),
            {
                "spec": json.dumps({"kind": "fit", "network": {"seed": 5}}),
                "metrics": json.dumps({"r2": [0.5, 0.9]}),
            },
        )
    command.upgrade(config, "head")
    with engine.connect() as connection:
        params = connection.execute(text("SELECT key, num FROM job_params")).all()
        metrics = dict(connection.execute(text("SELECT key, value FROM job_metrics")).all())
    engine.dispose()
    assert ("network.seed", 5.0) in params
    assert metrics["r2.min"] == 0.5
    assert metrics["r2.1"] == 0.9


def test_an_ordered_page_past_the_end_still_counts_every_match(session, runs):
    query = JobQuery(owner_id=runs.id, order_by="params.n", limit=2, offset=2)
    jobs, total = list_jobs(session, query)
    assert ([job.name for job in jobs], total) == (["b"], 3)
    jobs, total = list_jobs(session, JobQuery(owner_id=runs.id, order_by="params.n", offset=5))
    assert (jobs, total) == ([], 3)
