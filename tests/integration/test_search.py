"""Search against a real server on SQLite and PostgreSQL: runs carry params, metrics, a name,
tags and a note; ``GET /jobs?filter=...&order_by=...``; ``PATCH /jobs/{id}``; 422s that point at
the token; another user's jobs never match; the client's ``search`` and the CLI's ``--filter``."""

from __future__ import annotations

import json
import uuid

import pytest
import typer
from helpers.services import wait_for
from typer.testing import CliRunner

from lifrnn.cli import register_service_commands as register
from lifrnn.client import Client, InvalidSpec
from lifrnn.specs import parse_spec, spec_sha256

RADII = (2.0, 3.0, 4.0)


@pytest.fixture(scope="module")
def runs(service):
    """Three small soc runs of alice (radius 2, 3, 4; named r2, r3, r4) and one of bob, all
    tagged with this module's own ``suite`` so that other tests' jobs stay out."""
    suite = uuid.uuid4().hex[:12]
    ids = {}
    with service.client("alice") as alice, service.client("bob") as bob:
        for radius in RADII:
            body = {"kind": "soc", "n": 40, "radius": radius, "seed": 7}
            body |= {"name": f"r{radius:.0f}", "tags": {"suite": suite}, "note": "a sweep"}
            response = alice.post("/jobs", json=body)
            assert response.status_code == 201, response.text
            ids[f"r{radius:.0f}"] = response.json()["id"]
        body = {"kind": "soc", "n": 40, "radius": 3.0, "seed": 8, "tags": {"suite": suite}}
        ids["bob"] = bob.post("/jobs", json=body).json()["id"]
        for name, job_id in ids.items():
            wait_for(bob if name == "bob" else alice, job_id, {"succeeded"})
    return suite, ids


def search(client, filter, order_by=None, **params):
    query = {"filter": filter, **({"order_by": order_by} if order_by else {}), **params}
    query["count"] = True
    response = client.get("/jobs", params=query)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == len(page["items"])
    return page["items"]


def test_a_job_shows_its_labels_and_flat_params_and_metrics(service, runs):
    _, ids = runs
    with service.client("alice") as alice:
        job = alice.get(f"/jobs/{ids['r2']}").json()
    assert (job["name"], job["tags"]["suite"], job["note"]) == ("r2", runs[0], "a sweep")
    assert job["params"]["radius"] == 2.0
    assert job["params"]["n"] == 40
    assert job["flat_metrics"]["iterations"] == job["metrics"]["iterations"]


def test_labels_are_not_part_of_the_spec_or_its_hash(service, runs):
    _, ids = runs
    with service.client("alice") as alice:
        job = alice.get(f"/jobs/{ids['r3']}").json()
    assert not {"name", "tags", "note"} & job["spec"].keys()
    plain = parse_spec({"kind": "soc", "n": 40, "radius": 3.0, "seed": 7})
    assert job["spec_sha256"] == spec_sha256(plain)


def test_filter_on_params_and_order_by_a_param(service, runs):
    suite, _ = runs
    with service.client("alice") as alice:
        found = search(alice, f"tags.suite = '{suite}' and params.radius >= 3", "params.radius")
    assert [job["name"] for job in found] == ["r3", "r4"]


def test_filter_and_order_on_metrics(service, runs):
    suite, _ = runs
    with service.client("alice") as alice:
        ordered = search(alice, f"tags.suite = '{suite}'", "metrics.initial_abscissa desc")
        values = [job["flat_metrics"]["initial_abscissa"] for job in ordered]
        assert values == sorted(values, reverse=True)
        assert len(set(values)) == 3
        above = search(alice, f"tags.suite = '{suite}' and metrics.initial_abscissa > {values[1]}")
    assert [job["name"] for job in above] == [ordered[0]["name"]]


def test_or_parentheses_and_like(service, runs):
    suite, _ = runs
    with service.client("alice") as alice:
        found = search(
            alice,
            f"tags.suite = '{suite}' and (params.radius = 2 or name like 'r4%')",
            "name asc",
        )
    assert [job["name"] for job in found] == ["r2", "r4"]


def test_another_users_jobs_never_match(service, runs):
    suite, ids = runs
    with service.client("alice") as alice, service.client("bob") as bob:
        mine = search(alice, f"tags.suite = '{suite}' and params.n = 40")
        theirs = search(bob, f"tags.suite = '{suite}' and params.n = 40")
    assert {job["id"] for job in mine} == {ids["r2"], ids["r3"], ids["r4"]}
    assert [job["id"] for job in theirs] == [ids["bob"]]


def test_the_old_metric_filter_still_works_beside_the_new_one(service, runs):
    suite, _ = runs
    with service.client("alice") as alice:
        found = search(alice, f"tags.suite = '{suite}'", metric="iterations>=0")
    assert len(found) == 3


@pytest.mark.parametrize(
    ("filter", "position", "token"),
    [
        ("params.n >> 3", 11, "'>'"),
        ("tags.suite = 'open", 14, '"\'"'),
        ("colour = 'red'", 1, "'colour'"),
    ],
)
def test_a_bad_filter_is_a_422_pointing_at_the_token(service, filter, position, token):
    with service.client("alice") as alice:
        response = alice.get("/jobs", params={"filter": filter})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"at position {position} ({token})" in detail


def test_a_bad_order_by_is_a_422(service):
    with service.client("alice") as alice:
        response = alice.get("/jobs", params={"order_by": "metrics.cost sideways"})
    assert response.status_code == 422
    assert "position 14 ('sideways')" in response.json()["detail"]


def test_patch_changes_labels_for_the_owner_only(service, runs):
    suite, ids = runs
    with service.client("alice") as alice, service.client("bob") as bob:
        before = alice.get(f"/jobs/{ids['r3']}").json()
        assert bob.patch(f"/jobs/{ids['r3']}", json={"name": "mine"}).status_code == 404
        tags = {"suite": suite, "stage": "final"}
        response = alice.patch(f"/jobs/{ids['r3']}", json={"name": "best", "tags": tags})
        assert response.status_code == 200, response.text
        after = response.json()
        found = search(alice, f"tags.suite = '{suite}' and tags.stage = 'final'")
        alice.patch(f"/jobs/{ids['r3']}", json={"name": "r3", "tags": {"suite": suite}})
    assert (after["name"], after["tags"], after["note"]) == ("best", tags, "a sweep")
    assert after["spec_sha256"] == before["spec_sha256"]
    assert [job["id"] for job in found] == [ids["r3"]]


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"tags": {f"k{i}": "v" for i in range(33)}}, "tags"),
        ({"tags": {"bad key": "v"}}, "tags.bad key.[key]"),
        ({"tags": {"k": "v" * 101}}, "tags.k"),
        ({"note": "x" * 10_001}, "note"),
    ],
)
def test_labels_over_their_limits_are_422s_naming_the_field(service, runs, labels, field):
    _, ids = runs
    with service.client("alice") as alice:
        patched = alice.patch(f"/jobs/{ids['r2']}", json=labels)
        submitted = alice.post("/jobs", json={"kind": "soc", "n": 40, **labels})
    assert patched.status_code == 422
    assert submitted.status_code == 422
    assert f"{field}:" in submitted.json()["detail"]


def test_the_client_searches_pages_lazily_into_a_dataframe(service, runs):
    suite, ids = runs
    with Client(url=service.server.url, token=service.tokens["alice"]) as client:
        result = client.search(f"tags.suite = '{suite}'", "params.radius desc", page_size=2)
        assert [job.name for job in result] == ["r4", "r3", "r2"]
        assert result.total == 3
        row = result.rows()[0]
        with pytest.raises(InvalidSpec, match="position"):
            list(client.search("params.n ="))
        try:
            import pandas  # noqa: F401
        except ImportError:
            with pytest.raises(ImportError, match=r"lifrnn\[pandas\]"):
                result.to_dataframe()
            frame = None
        else:
            frame = result.to_dataframe()
    assert list(row)[:6] == ["id", "name", "kind", "status", "created", "seconds"]
    assert row["params.radius"] == 4.0
    assert row["tags.suite"] == suite
    assert row["metrics.iterations"] >= 0
    assert row["seconds"] > 0
    if frame is not None:
        assert list(frame.index) == [ids["r4"], ids["r3"], ids["r2"]]
        assert {"params.radius", "metrics.iterations", "tags.suite"} <= set(frame.columns)


def test_the_cli_lists_a_search(service, runs):
    suite, ids = runs
    app = typer.Typer()
    register(app)
    env = {"LIFRNN_URL": service.server.url, "LIFRNN_TOKEN": service.tokens["alice"]}
    filter = f"tags.suite = '{suite}'"
    args = ["jobs", "--filter", filter, "--order-by", "params.radius", "--json"]
    done = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    listed = json.loads(done.stdout)
    assert [job["id"] for job in listed["items"]] == [ids["r2"], ids["r3"], ids["r4"]]
    bad = CliRunner().invoke(app, ["jobs", "--filter", "params.n >> 3"], env=env)
    assert bad.exit_code != 0
    assert "position 11" in bad.output


def test_a_succeeded_spec_is_reused_on_request_and_only_then(service):
    """#15.5 on both databases: ``?reuse=true`` returns your succeeded run of the same spec
    (200, ``reused``); without it, or for another user, the spec runs again (201)."""
    spec = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 77}
    with service.client("alice") as alice, service.client("bob") as bob:
        first = alice.post("/jobs", json=spec).json()
        assert wait_for(alice, first["id"], {"succeeded", "failed"}, timeout=120)["status"] == (
            "succeeded"
        )
        again = alice.post("/jobs", params={"reuse": "true"}, json=spec)
        assert again.status_code == 200 and again.json()["reused"] is True
        assert again.json()["id"] == first["id"]
        fresh = alice.post("/jobs", json=spec)
        assert fresh.status_code == 201 and fresh.json()["id"] != first["id"]
        theirs = bob.post("/jobs", params={"reuse": "true"}, json=spec)
        assert theirs.status_code == 201 and theirs.json()["id"] != first["id"]
