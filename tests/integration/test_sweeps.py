"""Sweeps through a real ``lifrnn serve`` on SQLite and PostgreSQL: a 3 seeds × 3 radii SOC
sweep made with the Python client, its table over HTTP and as a dataframe, a fit sweep chained
over its networks, a bad point named, other users' sweeps hidden, and a sweep larger than the
room in the queue refused while one that fills it is queued and cancelled from the CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from lifrnn.cli import register_service_commands as register
from lifrnn.client import Client, Sweep

SOC = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 0}
FIT = {
    "kind": "fit",
    "dt": 0.002,
    "cost_tolerance": 0.5,
    "movements": {"duration": 0.1, "directions_deg": [0]},
}
GRID = {"seed": [0, 1, 2], "radius": [3.5, 4.0, 4.5]}


def wait_for_sweep(client: httpx.Client, sweep_id: str, timeout: float = 120) -> dict:
    """Poll the sweep until every job has finished; returns it."""
    deadline = time.monotonic() + timeout
    sweep: dict = {}
    while time.monotonic() < deadline:
        sweep = client.get(f"/sweeps/{sweep_id}").json()
        if sweep["progress"]["finished"] == sweep["progress"]["total"]:
            return sweep
        time.sleep(0.2)
    raise AssertionError(f"sweep {sweep_id} not finished after {timeout} s: {sweep['progress']}")


@pytest.fixture(scope="module")
def client(service):
    with Client(service.server.url, service.tokens["alice"]) as client:
        yield client


@pytest.fixture(scope="module")
def submitted(client: Client) -> dict[str, Sweep]:
    """alice's SOC sweep and the fit sweep over its networks, submitted at once."""
    soc = client.sweep(SOC, grid=GRID, name="seeds x radii")
    # three fits, each on one of the nine networks drawn by the sweep's seed (a grid over
    # {"sweep": id} would fit all nine: tests/unit/test_sweep_store.py checks that expansion)
    chain = {"n": 3, "seed": 0, "axes": {"network": {"choice": soc}}}
    return {"soc": soc, "fit": client.sweep(FIT, random=chain)}


@pytest.fixture(scope="module")
def finished(service, submitted) -> dict[str, dict]:
    with service.client("alice") as alice:
        return {name: wait_for_sweep(alice, sweep.id) for name, sweep in submitted.items()}


def test_a_grid_sweep_makes_one_job_per_point_and_tabulates_them(service, submitted, finished):
    created, done = submitted["soc"].data, finished["soc"]
    assert created["points"] == 9 and created["axes"] == {"grid": GRID}
    assert [row["values"] for row in created["rows"][:4]] == [
        {"seed": 0, "radius": 3.5},
        {"seed": 0, "radius": 4.0},
        {"seed": 0, "radius": 4.5},
        {"seed": 1, "radius": 3.5},
    ]
    assert done["progress"]["counts"]["succeeded"] == 9 and done["progress"]["fraction"] == 1.0
    with service.client("alice") as alice:
        for row in done["rows"]:
            assert row["status"] == "succeeded" and row["metrics"]["spectral_abscissa"] <= 0.15
            job = alice.get(f"/jobs/{row['job_id']}").json()
            assert (job["spec"]["seed"], job["spec"]["radius"]) == (
                row["values"]["seed"],
                row["values"]["radius"],
            )
            assert job["tags"] == {"sweep": done["id"]}
        listed = alice.get("/sweeps", params={"limit": 5}).json()
    assert {done["id"], finished["fit"]["id"]} <= {item["id"] for item in listed["items"]}


def test_a_fit_sweep_runs_over_the_networks_of_the_soc_sweep(service, submitted, finished):
    soc_jobs = [row["job_id"] for row in finished["soc"]["rows"]]
    done = finished["fit"]
    networks = [row["values"]["network"]["job"] for row in done["rows"]]
    assert len(networks) == 3 and set(networks) <= set(soc_jobs)
    assert submitted["fit"].axes["random"]["axes"] == {
        "network": {"choice": {"sweep": finished["soc"]["id"]}}
    }
    assert {row["status"] for row in done["rows"]} == {"succeeded"}
    assert all(row["metrics"]["r2_min"] > -10 for row in done["rows"])
    with service.client("alice") as alice:
        job = alice.get(f"/jobs/{done['rows'][0]['job_id']}").json()
        assert job["parent_job_id"] == networks[0] and job["spec"]["network"] == {
            "job": networks[0]
        }
        # the SOC sweep's networks are read by the fits: deleting it first is refused, naming them
        refused = alice.delete(f"/sweeps/{finished['soc']['id']}")
    assert refused.status_code == 409
    assert any(row["job_id"] in refused.json()["detail"] for row in done["rows"])


def test_a_bad_point_is_a_422_naming_it_and_nothing_is_created(service):
    with service.client("alice") as alice:
        before = alice.get("/jobs", params={"limit": 1, "count": True}).json()["total"]
        bad = alice.post(
            "/sweeps", json={"spec": SOC, "zip": {"seed": [0, 1, 2], "n": [40, 5, 40]}}
        )
        assert bad.status_code == 422
        assert bad.json()["detail"].startswith("invalid sweep: point 1 (seed=1, n=5): n: ")
        assert alice.get("/jobs", params={"limit": 1, "count": True}).json()["total"] == before


def test_another_users_sweep_is_not_found_but_an_admin_reads_it(service, submitted):
    sweep_id = submitted["soc"].id
    with service.client("bob") as bob:
        assert bob.get(f"/sweeps/{sweep_id}").status_code == 404
        assert bob.post(f"/sweeps/{sweep_id}/cancel").status_code == 404
        assert bob.delete(f"/sweeps/{sweep_id}").status_code == 404
        assert sweep_id not in {item["id"] for item in bob.get("/sweeps").json()["items"]}
        chained = bob.post("/sweeps", json={"spec": FIT, "grid": {"network": {"sweep": sweep_id}}})
        assert chained.status_code == 422 and "of yours" in chained.json()["detail"]
    with service.client("local") as admin:
        assert admin.get(f"/sweeps/{sweep_id}").status_code == 200


def test_a_sweep_fills_the_queue_but_not_past_it_and_cancels_from_the_cli(service, tmp_path: Path):
    """erin may have 5 jobs waiting and runs none: a sweep of 6 is refused, one of 5 queues."""
    app = typer.Typer()
    register(app)
    env = {"LIFRNN_URL": service.server.url, "LIFRNN_TOKEN": service.tokens["erin"]}
    env["COLUMNS"] = "200"
    spec = tmp_path / "soc.json"
    spec.write_text(json.dumps(SOC))

    def lifrnn(*args: str):
        return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)

    too_many = lifrnn("sweep", str(spec), "--grid", "seed=0:6", "--name", "queue")
    assert too_many.exit_code != 0 and "room for 5 more" in too_many.output
    made = lifrnn("sweep", str(spec), "--grid", "seed=0:5", "--name", "queue", "--json")
    assert made.exit_code == 0, made.stderr
    sweep = json.loads(made.stdout)
    try:
        assert sweep["points"] == 5 and sweep["progress"]["counts"]["queued"] == 5
        with service.client("erin") as erin:
            assert erin.post("/jobs", json={**SOC, "seed": 99}).status_code == 429
        shown = lifrnn("sweep-show", sweep["id"])
        assert shown.exit_code == 0 and "5 points" in shown.stdout
        assert sweep["rows"][4]["job_id"] in shown.stdout
    finally:  # erin's queue is shared with other tests: empty it whatever happened
        cancelled = lifrnn("sweep-cancel", sweep["id"])
    assert cancelled.exit_code == 0 and "5 cancelled" in cancelled.stderr
    with service.client("erin") as erin:
        assert erin.delete(f"/sweeps/{sweep['id']}").status_code == 204
        assert erin.get(f"/sweeps/{sweep['id']}").status_code == 404
        assert erin.get(f"/jobs/{sweep['rows'][0]['job_id']}").status_code == 404


def test_the_client_follows_a_sweep_and_tabulates_it(submitted, finished):
    made = submitted["soc"]
    assert made.wait(timeout=120, progress=False) is made and made.done
    assert [job.spec["seed"] for job in made.jobs] == [
        row["values"]["seed"] for row in made.data["rows"]
    ]
    rows = made.summary()
    assert [(row["params.seed"], row["params.radius"]) for row in rows[:2]] == [(0, 3.5), (0, 4.0)]
    assert all(row["metrics.spectral_abscissa"] <= 0.15 for row in rows)
    chained = submitted["fit"].refresh().summary()
    assert {row["params.network.job"] for row in chained} <= set(made.job_ids)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"lifrnn\[pandas\]"):
            made.to_dataframe()
    else:
        frame = made.to_dataframe()
        assert list(frame.index) == list(range(9))
        assert frame["params.seed"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        assert (frame["status"] == "succeeded").all()
