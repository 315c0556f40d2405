"""Input no store can keep, against a real server (SQLite and PostgreSQL): NaN and infinities
(JSON has neither; Python's parser takes them), NUL characters (PostgreSQL text cannot hold one)
and lone surrogates (not text: no UTF-8 for them), in bodies and in query parameters. Each is a
422 that names the field, answered before anything is written (issue 27, point 4)."""

from __future__ import annotations

from typing import Any

import pytest

SOC = '"kind": "soc", "n": 40, "radius": 4.0'
"""A small SOC spec's fields as JSON text: the cases add theirs beside them."""
ANY_ID = "00000000-0000-4000-8000-000000000000"


def job(fields: str) -> str:
    """``POST /jobs``' body: the SOC spec with ``fields`` (JSON text) beside its own."""
    return f"{{{SOC}, {fields}}}"


def sweep(fields: str, spec: str = "") -> str:
    """``POST /sweeps``' body: a sweep of the SOC spec (with ``spec``'s fields) and ``fields``."""
    return f'{{"spec": {{{SOC}{spec}}}, {fields}}}'


RECORDING_FIT = (
    f'{{"kind": "fit_data", "network": "{ANY_ID}", "data": "{ANY_ID}", '
    '"recording": {"align_event": "move\\u0000onset"}}'
)

# name: (method, path, JSON body text or query parameters, the field the answer must name)
CASES: dict[str, tuple[str, str, str | dict[str, str], str]] = {
    "job name NUL": ("POST", "/jobs", job('"name": "a\\u0000b"'), "name"),
    "job note NUL": ("POST", "/jobs", job('"note": "\\u0000"'), "note"),
    "job tag key NUL": ("POST", "/jobs", job('"tags": {"a\\u0000": "x"}'), "tags.a\\u0000"),
    "job tag value NaN": ("POST", "/jobs", job('"tags": {"lr": NaN}'), "tags.lr"),
    "job name surrogate": ("POST", "/jobs", job('"name": "\\ud800"'), "name"),
    "spec text NUL": ("POST", "/jobs", RECORDING_FIT, "recording.align_event"),
    "relabel tag NaN": ("PATCH", "/jobs/{job}", '{"tags": {"lr": NaN}}', "tags.lr"),
    "relabel note -Infinity": ("PATCH", "/jobs/{job}", '{"note": -Infinity}', "note"),
    "relabel name surrogate": ("PATCH", "/jobs/{job}", '{"name": "x\\udfff"}', "name"),
    "relabel name NUL": ("PATCH", "/jobs/{job}", '{"name": "a\\u0000"}', "name"),
    "relabel tag value NUL": ("PATCH", "/jobs/{job}", '{"tags": {"k": "\\u0000"}}', "tags.k"),
    "sweep axis NaN": ("POST", "/sweeps", sweep('"grid": {"seed": [0, NaN]}'), "grid.seed[1]"),
    "sweep axis Infinity": (
        "POST",
        "/sweeps",
        sweep('"zip": {"radius": [Infinity]}'),
        "zip.radius[0]",
    ),
    "sweep spec NaN": ("POST", "/sweeps", sweep('"zip": {"seed": [1]}', ', "p": NaN'), "spec.p"),
    "sweep name NUL": (
        "POST",
        "/sweeps",
        sweep('"grid": {"seed": [0]}, "name": "\\u0000"'),
        "name",
    ),
    "sweep spec surrogate": (
        "POST",
        "/sweeps",
        sweep('"grid": {"seed": [0]}', ', "method": "\\udb00"'),
        "spec.method",
    ),
    "filter NUL": ("GET", "/jobs", {"filter": "name = 'a\x00'"}, "filter"),
    "order_by NUL": ("GET", "/jobs", {"order_by": "name\x00"}, "order_by"),
}


def written(client: Any, job_id: str) -> tuple[int, int, dict[str, Any]]:
    """What a bad request must not change: alice's jobs and sweeps (counted) and the labels of
    the job the PATCH cases aim at."""
    jobs = client.get("/jobs", params={"count": "true", "limit": 1}).json()["total"]
    sweeps = client.get("/sweeps", params={"count": "true", "limit": 1}).json()["total"]
    job = client.get(f"/jobs/{job_id}").json()
    return jobs, sweeps, {field: job[field] for field in ("name", "tags", "note")}


@pytest.mark.parametrize("case", list(CASES))
def test_unstorable_input_is_a_422_naming_the_field_and_writes_nothing(service, case):
    method, path, sent, field = CASES[case]
    with service.client("alice") as alice:
        target = alice.post(
            "/jobs",
            json={"kind": "soc", "n": 40, "radius": 4.0, "seed": 27, "name": "target"},
            headers={"Idempotency-Key": "bad-input-target"},  # one job for every case
        ).json()["id"]
        before = written(alice, target)
        if isinstance(sent, dict):
            answer = alice.request(method, path, params=sent)
        else:
            answer = alice.request(
                method,
                path.format(job=target),
                content=sent.encode(),
                headers={"content-type": "application/json"},
            )
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and f"{field}:" in detail, detail
        assert written(alice, target) == before
