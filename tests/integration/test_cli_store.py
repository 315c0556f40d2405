"""``lifrnn run`` records its job in the local store; ``lifrnn users create`` makes tokens."""

from __future__ import annotations

import json

from helpers.services import cli, server_env
from sqlalchemy import select

from lifrnn.settings import Settings
from lifrnn.store import Artifact, Job, JobEvent, Network, Store, User
from lifrnn.store.users import user_for_token


def test_run_records_the_job_network_and_artifacts(tmp_path):
    env = server_env(tmp_path / "home", None)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"kind": "soc", "n": 40, "radius": 4.0, "seed": 3}))
    done = cli(env, "run", str(spec), "--out", str(tmp_path / "out"), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "succeeded"
    assert result["artifacts"]["network.safetensors"].startswith(str(tmp_path / "out"))
    store = Store(Settings(home=tmp_path / "home"))
    with store.session() as session:
        job = session.scalars(select(Job)).one()
        assert (job.status, job.kind, job.attempts) == ("succeeded", "soc", 1)
        assert job.metrics["converged"] is True
        statuses = session.scalars(
            select(JobEvent.status).where(JobEvent.type == "status").order_by(JobEvent.id)
        ).all()
        assert statuses == ["queued", "running", "succeeded"]
        names = set(session.scalars(select(Artifact.name)))
        assert {"network.safetensors", "soc.png", "spec.json"} <= names
        network = session.scalars(select(Network)).one()
        assert (network.n, network.job_id) == (40, job.id)
    store.dispose()


def test_users_create_prints_a_working_token_once(tmp_path):
    env = server_env(tmp_path, None)
    done = cli(env, "users", "create", "dana", "--admin")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    store = Store(Settings(home=tmp_path))
    with store.session() as session:
        user = user_for_token(session, token)
        assert user is not None and user.name == "dana" and user.is_admin
    store.dispose()
    again = cli(env, "users", "create", "dana")
    assert again.returncode == 1 and "exists already" in again.stderr


def test_users_limits_sets_and_clears_a_users_own_limits(tmp_path):
    env = server_env(tmp_path, None)
    assert cli(env, "users", "create", "erik").returncode == 0
    done = cli(env, "users", "limits", "erik", "--job-memory", "64GiB", "--job-work", "1e16")
    assert done.returncode == 0, done.stderr
    assert "job memory 68719476736 B" in done.stdout and "(own: memory, work)" in done.stdout
    store = Store(Settings(home=tmp_path))
    with store.session() as session:
        erik = session.scalars(select(User).where(User.name == "erik")).one()
        assert (erik.max_job_memory, erik.max_job_output, erik.max_job_work) == (2**36, None, 1e16)
    cleared = cli(env, "users", "limits", "erik", "--job-memory", "default")
    assert "(own: work)" in cleared.stdout
    with store.session() as session:
        assert session.scalars(select(User.max_job_memory).where(User.name == "erik")).one() is None
    store.dispose()
    refused = cli(env, "users", "limits", "erik", "--job-output", "lots")
    assert refused.returncode == 2 and "expected a size" in refused.stderr
