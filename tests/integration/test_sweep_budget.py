"""Sweeps within a budget, through a real ``lifrnn serve`` on SQLite and on PostgreSQL: a sweep
whose summed work exceeds ``LIFRNN_MAX_SWEEP_WORK`` is refused with its estimate and writes
nothing; a 1,000-point sweep is created whole (in point order, searchable, with its first
events), fills its owner's queue and no more, and is cancelled whole; cancelling a sweep fails
the chained sweep waiting for its networks. Timing lives in ``bench/sweeps.py``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from lifrnn.settings import Settings
from lifrnn.store import Store
from lifrnn.store.users import create_user

CHEAP = {"kind": "soc", "n": 10, "max_iterations": 1}
"""An SOC spec whose estimate is tiny: 1,000 of them stay far below the sweep budget."""


@pytest.fixture
def sweeper(service) -> Iterator[httpx.Client]:
    """A new user whose queue holds 1,000 jobs and who runs none, so statuses stay put."""
    settings = Settings(
        home=service.server.home,
        database_url=service.server.env.get("LIFRNN_DATABASE_URL", ""),
    )
    store = Store(settings)
    with store.session() as session:
        _, token = create_user(
            session, f"sweeper-{uuid.uuid4().hex[:8]}", max_queued=1000, max_running=0
        )
        session.commit()
    store.dispose()
    with service.server.client(token) as client:
        yield client


def totals(client: httpx.Client) -> tuple[int, int]:
    """How many sweeps and jobs the client's user has."""
    sweeps = client.get("/sweeps", params={"count": True, "limit": 1}).json()["total"]
    jobs = client.get("/jobs", params={"count": True, "limit": 1}).json()["total"]
    return sweeps, jobs


def test_a_sweep_over_the_work_budget_is_refused_with_its_estimate(sweeper):
    """The issue's 1,000 N=1500 SOC builds: each within the per-job limit, 1e18 together."""
    body = {"spec": {"kind": "soc", "n": 1500}, "grid": {"seed": list(range(1000))}}
    refused = sweeper.post("/sweeps", json=body)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert "LIFRNN_MAX_SWEEP_WORK" in detail
    assert "1000 points 1e+18 floating-point operations" in detail  # the estimate
    assert "of 1e+17" in detail  # the limit
    assert "n=1500, 5000 iterations" in detail  # what the largest point's estimate rests on
    assert totals(sweeper) == (0, 0)


def test_a_thousand_point_sweep_is_created_and_cancelled_whole(sweeper):
    made = sweeper.post("/sweeps", json={"spec": CHEAP, "grid": {"seed": list(range(1000))}})
    assert made.status_code == 201, made.text
    sweep = made.json()
    assert sweep["points"] == 1000 and sweep["progress"]["counts"]["queued"] == 1000
    assert [row["values"]["seed"] for row in sweep["rows"]] == list(range(1000))
    assert len({row["job_id"] for row in sweep["rows"]}) == 1000
    newest = sweeper.get("/jobs", params={"limit": 2}).json()["items"]
    assert [job["spec"]["seed"] for job in newest] == [999, 998]  # queued in point order
    assert newest[0]["tags"] == {"sweep": sweep["id"]}
    found = sweeper.get("/jobs", params={"filter": "params.seed = 500", "count": True}).json()
    assert found["total"] == 1 and found["items"][0]["id"] == sweep["rows"][500]["job_id"]
    assert sweeper.post("/sweeps", json={"spec": CHEAP, "grid": {"seed": [0]}}).status_code == 429

    cancelled = sweeper.post(f"/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    progress = cancelled.json()["progress"]
    assert progress["counts"]["cancelled"] == progress["finished"] == 1000
    last = sweep["rows"][999]["job_id"]
    events = sweeper.get(f"/jobs/{last}/events").json()
    assert [(event["status"], event["message"]) for event in events] == [
        ("queued", ""),
        ("cancelled", "cancelled before it started"),
    ]
    again = sweeper.post(f"/sweeps/{sweep['id']}/cancel").json()
    assert again["progress"]["counts"]["cancelled"] == 1000
    assert len(sweeper.get(f"/jobs/{last}/events").json()) == 2  # nothing moved twice
    assert totals(sweeper) == (1, 1000)


def test_cancelling_a_sweep_fails_the_chained_sweep_waiting_for_it(sweeper):
    socs = sweeper.post("/sweeps", json={"spec": CHEAP, "grid": {"seed": [0, 1]}}).json()
    fit = {"kind": "fit", "dt": 0.002, "movements": {"duration": 0.1, "directions_deg": [0]}}
    chain = {"spec": fit, "grid": {"network": {"sweep": socs["id"]}}}
    fits = sweeper.post("/sweeps", json=chain).json()
    assert fits["progress"]["counts"]["waiting"] == 2

    sweeper.post(f"/sweeps/{socs['id']}/cancel")
    rows = sweeper.get(f"/sweeps/{fits['id']}").json()["rows"]
    parents = [row["job_id"] for row in socs["rows"]]
    assert [(row["status"], row["error"]) for row in rows] == [
        ("failed", f"parent job {parent} was cancelled") for parent in parents
    ]
