"""Honest progress over the service (SQLite and PostgreSQL): elapsed time and time left while a
job runs, its curves (``GET /jobs/{id}/series``), and a client that follows the event stream
(reconnecting with ``Last-Event-ID``) instead of polling."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from helpers.services import wait_for

from lifrnn.client import Client, JobCancelledError, WaitTimeoutError

SMALL = {"kind": "soc", "method": "kao2021", "n": 60, "seed": 3}
LONG = {"kind": "soc", "n": 200, "seed": 2, "target_abscissa": -50.0, "max_iterations": 1_000_000}
FINAL = {"succeeded", "failed", "cancelled"}


def test_a_finished_build_has_its_whole_abscissa_curve_once(service):
    with service.client("alice") as alice:
        job = alice.post("/jobs", json=SMALL).json()
        done = wait_for(alice, job["id"], FINAL, timeout=120)
        assert done["status"] == "succeeded", done
        assert done["elapsed_seconds"] > 0 and done["eta_seconds"] is None
        curve = alice.get(f"/jobs/{job['id']}/series").json()["series"]["abscissa"]
        iterations = done["metrics"]["iterations"]
        assert curve["steps"] == list(range(1, iterations + 1))  # every step, each once
        assert curve["values"][-1] == pytest.approx(done["metrics"]["spectral_abscissa"])
        assert curve["values"][-1] <= 0.81 < curve["values"][0]  # kao2021's target
        later = alice.get(f"/jobs/{job['id']}/series", params={"after": iterations - 3}).json()
        assert later["series"]["abscissa"]["steps"] == list(range(iterations - 2, iterations + 1))
        only = alice.get(f"/jobs/{job['id']}/series", params={"name": "cost"}).json()
        assert only["series"] == {}
        bad = alice.get(f"/jobs/{job['id']}/series", params={"name": "Robert'); DROP"})
        assert bad.status_code == 422 and "name" in str(bad.json()["detail"])
        progress = [e for e in alice.get(f"/jobs/{job['id']}/events").json() if e["progress"]]
        fractions = [e["progress"] for e in progress]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0
    with service.client("bob") as bob:  # someone else's curves are not there at all
        assert bob.get(f"/jobs/{job['id']}/series").status_code == 404


def test_a_running_job_shows_elapsed_time_and_time_left(service):
    with service.client("alice") as alice:
        job_id = alice.post("/jobs", json=LONG).json()["id"]
        deadline = time.monotonic() + 60
        job = alice.get(f"/jobs/{job_id}").json()
        while job["eta_seconds"] is None or len(series_steps(alice, job_id)) < 20:
            assert time.monotonic() < deadline, f"no estimate of the time left: {job}"
            time.sleep(0.2)
            job = alice.get(f"/jobs/{job_id}").json()
        assert job["status"] == "running" and job["elapsed_seconds"] > 0
        assert job["eta_seconds"] > 0  # a target of -50 is far away
        steps = series_steps(alice, job_id)
        assert steps == list(range(1, len(steps) + 1))
        history = alice.get(f"/jobs/{job_id}/events").json()
        timed = [e for e in history if e["elapsed_seconds"] is not None]
        assert timed and all(e["type"] == "progress" for e in timed)
        alice.post(f"/jobs/{job_id}/cancel")
        assert wait_for(alice, job_id, FINAL, timeout=30)["status"] == "cancelled"


def series_steps(client: httpx.Client, job_id: str) -> list[int]:
    curves = client.get(f"/jobs/{job_id}/series").json()["series"]
    return curves.get("abscissa", {}).get("steps", [])


def cancel_later(client: Client, job_id: str, seconds: float) -> threading.Thread:
    """Cancel job ``job_id`` after ``seconds`` from another thread (and connection)."""

    def cancel() -> None:
        time.sleep(seconds)
        with Client(client.url, client.token) as other:
            other.cancel(job_id)

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def test_wait_follows_the_event_stream_and_reconnects(service):
    """The server ends streams after 1 s (LIFRNN_STREAM_MAX_SECONDS): a longer wait opens the
    stream again with the last event's id, and reads the job itself only at its start and end."""
    requests: list[httpx.Request] = []
    client = Client(service.server.url, service.tokens["alice"])
    client._http.event_hooks["request"].append(requests.append)
    with client:
        job = client.submit(LONG, reuse=False)
        cancel_later(client, job.id, 3.5)
        with pytest.raises(JobCancelledError):
            job.wait(timeout=60, progress=False)
    assert job.status == "cancelled"
    streams = [r for r in requests if r.url.path.endswith("/events/stream")]
    reads = [r for r in requests if r.url.path == f"/jobs/{job.id}"]
    assert len(reads) <= 3, "wait() polled the job"
    assert len(streams) >= 3, "a 3.5 s wait on 1 s streams opens the stream again"
    resumed = [int(r.headers["Last-Event-ID"]) for r in streams[1:]]
    assert resumed == sorted(resumed) and resumed[0] > 0


def test_follow_yields_each_history_entry_once_across_reconnects(service):
    with Client(service.server.url, service.tokens["alice"]) as client:
        job = client.submit(LONG, reuse=False)
        cancel_later(client, job.id, 2.5)
        followed = list(client.follow(job.id))
        stored = client.events(job.id)
    assert [e["id"] for e in followed] == [e["id"] for e in stored]
    assert followed[-1]["status"] == "cancelled"


def test_wait_gives_up_at_its_timeout_and_the_job_goes_on(service):
    with Client(service.server.url, service.tokens["alice"]) as client:
        job = client.submit(LONG, reuse=False)
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError, match="still"):
            job.wait(timeout=2, progress=False)
        assert time.monotonic() - started < 10
        assert job.refresh().status in {"queued", "running"}
        job.cancel()
