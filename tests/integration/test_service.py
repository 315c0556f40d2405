"""The job service end to end: a real server, real HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
from helpers.services import FINAL, wait_for
from safetensors.numpy import load as load_safetensors

SMALL = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 1}
LONG = {"kind": "soc", "n": 200, "seed": 2, "target_abscissa": -50.0, "max_iterations": 1_000_000}


def test_small_job_runs_and_its_network_can_be_downloaded(service):
    with service.client("alice") as alice:
        submitted = alice.post("/jobs", json=SMALL)
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.headers["location"] == f"/jobs/{job_id}"
        job = wait_for(alice, job_id, FINAL)
        assert job["status"] == "succeeded", job
        assert job["progress"] == 1.0 and job["attempts"] == 1
        assert job["metrics"]["converged"] is True
        assert job["metrics"]["spectral_abscissa"] <= 0.15
        assert job["started_at"] and job["finished_at"] and job["code_version"]

        history = alice.get(f"/jobs/{job_id}/events").json()
        statuses = [e["status"] for e in history if e["type"] == "status"]
        assert statuses == ["queued", "running", "succeeded"]
        progress = [e["progress"] for e in history if e["type"] == "progress"]
        assert progress and all(0.0 <= p <= 1.0 for p in progress)
        assert all(e["at"] for e in history)

        artifacts = {a["name"]: a for a in job["artifacts"]}
        network = alice.get(artifacts["network.safetensors"]["url"])
        assert network.status_code == 200
        assert network.headers["content-type"] == "application/octet-stream"
        W = load_safetensors(network.content)["W"]
        assert W.shape == (40, 40) and W.dtype == np.float64
        assert np.max(np.linalg.eigvals(W).real) <= 0.15
        figure = alice.get(artifacts["soc.png"]["url"])
        assert figure.headers["content-type"] == "image/png"
        assert figure.content[:8] == b"\x89PNG\r\n\x1a\n"
        spec = alice.get(artifacts["spec.json"]["url"])
        assert spec.headers["content-type"] == "application/json"
        assert spec.json()["spec_sha256"] == job["spec_sha256"]

        [network_id] = job["network_ids"]
        record = alice.get(f"/networks/{network_id}").json()
        assert (record["kind"], record["n"], record["method"]) == ("soc", 40, "hennequin2014")
        assert record["job_id"] == job_id and record["lineage"] == []
        listed = alice.get("/networks", params={"kind": "soc", "n": 40}).json()
        assert network_id in [n["id"] for n in listed["items"]]


def test_listing_filters_by_status_kind_time_and_metrics(service):
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json={**SMALL, "seed": 5}).json()["id"]
        wait_for(alice, job_id, FINAL)
        before = alice.get(f"/jobs/{job_id}").json()["queued_at"]
        page = alice.get(
            "/jobs", params={"status": "succeeded", "kind": "soc", "limit": 1, "count": True}
        )
        assert page.status_code == 200
        assert page.json()["total"] >= 1 and len(page.json()["items"]) == 1
        good = alice.get("/jobs", params={"metric": "spectral_abscissa<=0.15"}).json()
        assert job_id in [j["id"] for j in good["items"]]
        none = alice.get(
            "/jobs", params={"metric": ["spectral_abscissa<=0.15", "n>1000"], "count": True}
        ).json()
        assert none["total"] == 0
        later = alice.get(
            "/jobs", params={"created_after": "2999-01-01T00:00:00Z", "count": True}
        ).json()
        assert later["total"] == 0
        window = alice.get("/jobs", params={"created_before": "2999-01-01", "kind": "soc"}).json()
        assert before in [j["queued_at"] for j in window["items"]]


def test_events_stream_as_server_sent_events(service):
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json={**SMALL, "seed": 6}).json()["id"]
        text, last = "", None
        deadline = time.monotonic() + 60
        while "event: end" not in text:  # streams end after 1 s here: reopen from the last id
            assert time.monotonic() < deadline, text[-2000:]
            headers = {"Last-Event-ID": last} if last else {}
            with alice.stream("GET", f"/jobs/{job_id}/events/stream", headers=headers) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                chunk = "".join(stream.iter_text())
            ids = [line[4:] for line in chunk.splitlines() if line.startswith("id: ")]
            last = ids[-1] if ids else last
            text += chunk
    data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    entries = [d for d in data if d.get("type") in ("status", "progress")]
    assert [d["status"] for d in entries if d["type"] == "status"][-1] == "succeeded"
    assert len({d["id"] for d in entries}) == len(entries)  # each entry once


def test_running_job_can_be_cancelled(service):
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json=LONG).json()["id"]
        deadline = time.monotonic() + 30
        while alice.get(f"/jobs/{job_id}").json()["progress"] <= 0:
            assert time.monotonic() < deadline, "the long job never reported progress"
            time.sleep(0.05)
        cancelled = alice.post(f"/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] in {"cancelling", "cancelled"}
        job = wait_for(alice, job_id, FINAL, timeout=20)
        assert job["status"] == "cancelled"
        statuses = [e["status"] for e in alice.get(f"/jobs/{job_id}/events").json()]
        assert statuses[0] == "queued" and "cancelling" in statuses and statuses[-1] == "cancelled"
        assert alice.post(f"/jobs/{job_id}/cancel").status_code == 409
        assert alice.delete(f"/jobs/{job_id}").status_code == 204
        assert alice.get(f"/jobs/{job_id}").status_code == 404


def test_quota_idempotency_and_queued_cancel(service):
    # carol may run nothing (max_running 0), so her jobs stay queued; two may wait
    with service.client("carol") as carol:
        first = carol.post("/jobs", json=SMALL, headers={"Idempotency-Key": "abc"})
        assert first.status_code == 201
        again = carol.post("/jobs", json=SMALL, headers={"Idempotency-Key": "abc"})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        clash = carol.post("/jobs", json={**SMALL, "seed": 9}, headers={"Idempotency-Key": "abc"})
        assert clash.status_code == 409 and "Idempotency-Key" in clash.json()["detail"]
        second = carol.post("/jobs", json=SMALL)
        assert second.status_code == 201
        over = carol.post("/jobs", json=SMALL)
        assert over.status_code == 429 and "quota" in over.json()["detail"]
        for job in (first.json(), second.json()):
            assert carol.get(f"/jobs/{job['id']}").json()["status"] == "queued"
            cancelled = carol.post(f"/jobs/{job['id']}/cancel")
            assert cancelled.json()["status"] == "cancelled"
        assert carol.post("/jobs", json=SMALL).status_code == 201


def test_users_see_and_touch_only_their_own(service):
    with service.client("alice") as alice, service.client("bob") as bob:
        job = alice.post("/jobs", json={**SMALL, "seed": 7}).json()
        job = wait_for(alice, job["id"], FINAL)
        artifact_url = job["artifacts"][0]["url"]
        [network_id] = job["network_ids"]
        for method, path in [
            ("GET", f"/jobs/{job['id']}"),
            ("GET", f"/jobs/{job['id']}/events"),
            ("GET", f"/jobs/{job['id']}/events/stream"),
            ("POST", f"/jobs/{job['id']}/cancel"),
            ("DELETE", f"/jobs/{job['id']}"),
            ("GET", artifact_url),
            ("GET", f"/networks/{network_id}"),
        ]:
            answer = bob.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
        assert job["id"] not in [j["id"] for j in bob.get("/jobs").json()["items"]]
        assert network_id not in [n["id"] for n in bob.get("/networks").json()["items"]]
        assert bob.get("/jobs", params={"all_users": True}).status_code == 403
        assert alice.get(f"/jobs/{job['id']}").status_code == 200
    with service.client("local") as admin:  # the local user of the embedded default
        everyone = admin.get("/jobs", params={"all_users": True, "limit": 1000}).json()
        assert job["id"] in [j["id"] for j in everyone["items"]]
    token_file = service.server.home / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_bad_requests_get_clear_4xx_answers(service):
    with service.client("alice") as alice, service.client(None) as anonymous:
        bad = alice.post("/jobs", json={"kind": "soc", "n": 4})
        assert bad.status_code == 422 and bad.json()["detail"].startswith("invalid spec: n:")
        typo = alice.post("/jobs", json={"kind": "soc", "radiuss": 3})
        assert typo.status_code == 422 and "radiuss" in typo.json()["detail"]
        unknown = alice.post("/jobs", json={"kind": "dance"})
        assert unknown.status_code == 422 and "dance" in unknown.json()["detail"]
        extreme = alice.post("/jobs", json={"kind": "fit", "dt": 1e-310})
        assert extreme.status_code == 422 and extreme.json()["detail"].startswith("invalid spec")
        for body in (b"{not json", b"[]", b"null", b"\xff\xfe"):
            answer = alice.post("/jobs", content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 422, body
        plain = alice.post("/jobs", content=b"kind=soc", headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and "application/json" in plain.json()["detail"]
        huge = alice.post("/jobs", json={**SMALL, "padding": "x" * 200_000})
        assert huge.status_code == 413 and "bytes" in huge.json()["detail"]

        def chunks():
            yield b'{"kind": "soc", "pad": "'
            for _ in range(30):
                yield b"x" * 10_000
            yield b'"}'

        streamed = alice.post(
            "/jobs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        missing = str(uuid.uuid4())
        for path in (
            f"/jobs/{missing}",
            "/jobs/not-an-id",
            f"/networks/{missing}",
            f"/artifacts/{missing}",
            f"/jobs/{missing}/events",
        ):
            answer = alice.get(path)
            assert answer.status_code == 404 and answer.json()["detail"], path
        assert alice.post(f"/jobs/{missing}/cancel").status_code == 404
        assert alice.delete(f"/jobs/{missing}").status_code == 404
        filt = alice.get("/jobs", params={"metric": "r2_min"})
        assert filt.status_code == 422 and "NAME OP VALUE" in filt.json()["detail"]
        assert alice.get("/jobs", params={"status": "sleeping"}).status_code == 422
        assert alice.get("/jobs", params={"limit": 0}).status_code == 422
        nobody = anonymous.post("/jobs", json=SMALL)
        assert nobody.status_code == 401 and "Bearer" in nobody.json()["detail"]
        wrong = anonymous.get("/jobs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert anonymous.get("/health").json()["status"] == "ok"


def test_killed_server_requeues_and_finishes_the_job(service):
    """SIGKILL mid-job; after a restart the stale job is re-queued and runs to the end."""
    spec = {"kind": "soc", "n": 100, "seed": 3}
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json=spec).json()["id"]
        deadline = time.monotonic() + 30
        while alice.get(f"/jobs/{job_id}").json()["progress"] <= 0.05:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    service.server.kill()
    service.server.start()
    with service.client("alice") as alice:
        job = wait_for(alice, job_id, FINAL, timeout=90)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        history = alice.get(f"/jobs/{job_id}/events").json()
        statuses = [e["status"] for e in history if e["type"] == "status"]
        assert statuses == ["queued", "running", "queued", "running", "succeeded"]
        requeued = [e for e in history if e["type"] == "status"][2]
        assert "stopped beating" in requeued["message"]


def test_a_network_built_from_a_stored_one_records_its_lineage(service):
    with service.client("alice") as alice:
        parent_job = wait_for(
            alice, alice.post("/jobs", json={**SMALL, "seed": 11}).json()["id"], FINAL
        )
        [parent_id] = parent_job["network_ids"]
        parent = alice.get(f"/networks/{parent_id}").json()
        assert "path" not in parent  # no endpoint names a place on the server
        child_spec = {**SMALL, "seed": 12, "initial_weights": parent["artifact_id"]}
        child_job = alice.post("/jobs", json=child_spec).json()
        assert child_job["parent_network_id"] == parent_id
        child_job = wait_for(alice, child_job["id"], FINAL)
        assert child_job["status"] == "succeeded", child_job
        [child_id] = child_job["network_ids"]
        child = alice.get(f"/networks/{child_id}").json()
        assert child["parent_network_id"] == parent_id
        assert [n["id"] for n in child["lineage"]] == [parent_id]
    with service.client("bob") as bob:  # bob cannot name alice's file at all
        refused = bob.post("/jobs", json=child_spec)
        assert refused.status_code == 422
        assert refused.json()["detail"].startswith("invalid spec: initial_weights: no file")


def test_a_clean_shutdown_puts_running_jobs_back_in_the_queue(service):
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json={**LONG, "seed": 4}).json()["id"]
        wait_for(alice, job_id, {"running"})
    service.server.stop()  # SIGTERM: the worker pool stops its jobs and re-queues them
    service.server.start()
    with service.client("alice") as alice:
        job = wait_for(alice, job_id, {"running"}, timeout=30)
        assert job["attempts"] == 2
        history = [e for e in alice.get(f"/jobs/{job_id}/events").json() if e["type"] == "status"]
        assert [e["status"] for e in history][:4] == ["queued", "running", "queued", "running"]
        assert "shut down" in history[2]["message"]
        alice.post(f"/jobs/{job_id}/cancel")
        assert wait_for(alice, job_id, FINAL, timeout=20)["status"] == "cancelled"


def test_the_history_comes_in_pages(service):
    with service.client("alice") as alice:
        job = wait_for(alice, alice.post("/jobs", json={**SMALL, "seed": 21}).json()["id"], FINAL)
        whole = alice.get(f"/jobs/{job['id']}/events").json()
        assert len(whole) >= 4
        pages, after = [], 0
        while True:
            page = alice.get(f"/jobs/{job['id']}/events", params={"after": after, "limit": 2})
            pages += page.json()
            if len(page.json()) < 2:
                break
            after = page.json()[-1]["id"]
        assert pages == whole
        newest = alice.get(f"/jobs/{job['id']}/events", params={"limit": 2, "last": True}).json()
        assert newest == whole[-2:] and newest[-1]["status"] == "succeeded"
        assert alice.get(f"/jobs/{job['id']}/events", params={"limit": 0}).status_code == 422


def test_an_admins_cancel_and_delete_of_another_users_job_are_recorded_with_the_admins_name(
    service,
):
    with service.client("carol") as carol, service.client("local") as admin:
        job = carol.post("/jobs", json={**SMALL, "seed": 31}).json()  # carol's jobs stay queued
        assert admin.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
        history = carol.get(f"/jobs/{job['id']}/events").json()
        assert history[-1]["message"] == "cancelled by admin local before it started"
        assert admin.delete(f"/jobs/{job['id']}").status_code == 204
        assert carol.get(f"/jobs/{job['id']}").status_code == 404
    # the job's history went with it: the server log keeps who deleted it
    logged = service.server.log.read_text()
    assert f"job {job['id']} of user" in logged and "deleted by admin local" in logged


def test_the_root_address_leads_to_the_dashboard(service):
    with service.client(None) as anyone:
        answer = anyone.get("/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/ui"
    assert "the dashboard: http://127.0.0.1:" in service.server.log.read_text()  # lifrnn serve
