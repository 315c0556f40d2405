"""List pages count every match only when asked: ``count=true`` fills ``total``, without it
``total`` is null and ``has_more`` still says whether another page follows; on SQLite and
PostgreSQL, for jobs (newest first and ``order_by``), networks, files and sweeps, and through
the Python client (which asks by default)."""

from __future__ import annotations

import uuid

import pytest

from lifrnn.client import Client


@pytest.fixture(scope="module")
def suite(service):
    """Three queued-or-finished soc jobs of alice tagged with this module's own ``suite``."""
    tag = uuid.uuid4().hex[:12]
    with service.client("alice") as alice:
        for seed in range(3):
            body = {"kind": "soc", "n": 40, "radius": 2.0, "seed": seed, "tags": {"suite": tag}}
            response = alice.post("/jobs", json=body)
            assert response.status_code == 201, response.text
    return tag


def jobs_page(service, suite, **params):
    with service.client("alice") as alice:
        response = alice.get("/jobs", params={"filter": f"tags.suite = '{suite}'", **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_job_page_is_not_counted_unless_asked(service, suite):
    page = jobs_page(service, suite, limit=2)
    assert page["total"] is None and len(page["items"]) == 2 and page["has_more"] is True


def test_count_true_counts_every_match(service, suite):
    page = jobs_page(service, suite, limit=2, count=True)
    assert page["total"] == 3 and len(page["items"]) == 2 and page["has_more"] is True


def test_the_last_page_has_no_more(service, suite):
    page = jobs_page(service, suite, limit=2, offset=2)
    assert (len(page["items"]), page["has_more"], page["total"]) == (1, False, None)
    whole = jobs_page(service, suite, limit=3)
    assert (len(whole["items"]), whole["has_more"]) == (3, False)


@pytest.mark.parametrize("count", [False, True])
def test_an_ordered_page_counts_only_when_asked(service, suite, count):
    page = jobs_page(service, suite, order_by="params.seed desc", limit=1, count=count)
    assert page["total"] == (3 if count else None) and page["has_more"] is True
    assert page["items"][0]["spec"]["seed"] == 2


def test_a_page_past_the_end_still_counts_when_asked(service, suite):
    for order in ({}, {"order_by": "params.seed"}):
        page = jobs_page(service, suite, offset=10, count=True, **order)
        assert (page["items"], page["total"], page["has_more"]) == ([], 3, False)


@pytest.mark.parametrize("path", ["/networks", "/files", "/sweeps"])
def test_the_other_listings_count_only_when_asked(service, path):
    with service.client("alice") as alice:
        plain = alice.get(path, params={"limit": 1})
        counted = alice.get(path, params={"limit": 1, "count": True})
    assert plain.status_code == counted.status_code == 200
    assert plain.json()["total"] is None and isinstance(plain.json()["has_more"], bool)
    total = counted.json()["total"]
    assert isinstance(total, int) and counted.json()["has_more"] == (total > 1)


def test_the_client_counts_by_default_and_skips_it_on_request(service, suite):
    with Client(url=service.server.url, token=service.tokens["alice"]) as client:
        counted = client.jobs(filter=f"tags.suite = '{suite}'", limit=2)
        assert (len(counted), counted.total, counted.has_more) == (2, 3, True)
        plain = client.jobs(filter=f"tags.suite = '{suite}'", limit=2, count=False)
        assert (len(plain), plain.total, plain.has_more) == (2, None, True)
        assert client.networks(count=False).total is None
        assert client.files(count=False).total is None
        assert client.sweeps(count=False).total is None
        assert len(client.search(f"tags.suite = '{suite}'", page_size=2)) == 3
