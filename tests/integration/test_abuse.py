"""A careless or hostile lab member against a real server (SQLite and PostgreSQL): every
attempt of issue 13 ends in a 4xx that says why, never a server error, a quota overrun or an
accepted spec the service cannot afford."""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import time
import types
import typing
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import BaseModel

from lifrnn.specs import SPEC_MODELS

SMALL = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 1}
NETWORK = "00000000-0000-4000-8000-000000000000"
"""Any id: a float field is judged before any reference."""
MINIMAL = {
    "soc": {"kind": "soc"},
    "fit": {"kind": "fit"},
    "prepare": {"kind": "prepare", "network": NETWORK},
    "retrain": {"kind": "retrain", "network": NETWORK},
    "fit_data": {"kind": "fit_data", "network": NETWORK, "data": NETWORK},
    "simulate_spiking": {"kind": "simulate_spiking", "network": NETWORK},
}


def members(annotation: Any) -> list[Any]:
    """The types a field may hold: ``Annotated`` and unions unwrapped."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in members(arg)]
    return [annotation]


def float_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, bool]]:
    """Dotted paths of every float field of ``model`` (and its nested models); True for lists."""
    found = []
    for name, field in model.model_fields.items():
        kinds = members(field.annotation)
        if float in kinds:
            found.append((f"{prefix}{name}", False))
        if any(
            typing.get_origin(k) is list and float in members(typing.get_args(k)[0]) for k in kinds
        ):
            found.append((f"{prefix}{name}", True))
        for nested in kinds:
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                found += float_fields(nested, f"{prefix}{name}.")
    return found


def with_value(spec: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    spec = {**spec}
    target = spec
    *parents, last = path.split(".")
    for part in parents:
        target[part] = dict(target.get(part) or ({"kind": "soc"} if part == "network" else {}))
        target = target[part]
    target[last] = value
    return spec


def test_every_float_field_refuses_nan_and_infinity(service):
    cases = [
        (kind, path, is_list)
        for kind, model in SPEC_MODELS.items()
        for path, is_list in float_fields(model)
    ]
    assert len(cases) >= 37  # every spec's floats, nested ones included
    with service.client("alice") as alice:
        for kind, path, is_list in cases:
            for bad in (math.nan, math.inf, -math.inf):
                spec = with_value(MINIMAL[kind], path, [bad] if is_list else bad)
                answer = alice.post(  # NaN, Infinity, -Infinity as JSON tokens
                    "/jobs", content=json.dumps(spec), headers={"content-type": "application/json"}
                )
                assert answer.status_code == 422, (kind, path, bad, answer.text)
                detail = answer.json()["detail"]
                assert f"{path}" in detail and "finite" in detail, (kind, path, detail)


@pytest.mark.parametrize("round_", range(10))
def test_twenty_concurrent_submissions_never_pass_max_queued(service, round_):
    """erin may have 5 jobs waiting (and runs none): 20 at once, exactly 5 get in."""
    with service.client("erin") as erin:

        def submit(seed: int) -> int:
            return erin.post("/jobs", json={**SMALL, "seed": seed}).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            codes = list(pool.map(submit, range(20)))
        assert codes.count(201) == 5 and codes.count(429) == 15, codes
        queued = erin.get("/jobs", params={"status": "queued", "limit": 100}).json()["items"]
        assert len(queued) == 5
        for job in queued:
            assert erin.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_a_stalled_body_is_cut_off_with_408(service):
    """A client that declares 100 bytes and sends 10 holds nothing for long."""
    url = service.server.url.removeprefix("http://")
    host, port = url.split(":")
    token = service.tokens["alice"]
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"kind": '
        )
        started = time.monotonic()
        answer = receive_all(connection)
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "stalled" in answer and time.monotonic() - started < 10


def receive_all(connection: socket.socket) -> str:
    """One whole response: its headers and its ``Content-Length`` bytes of body (they may come
    in separate packets)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(4096) or b"\r\n\r\n"
    head, body = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
    while length and len(body) < int(length.group(1)):
        chunk = connection.recv(4096)
        if not chunk:
            break
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_slow_headers_are_cut_off_with_408(service):
    """A client that sends half a request line and waits holds its connection for 2 s only."""
    url = service.server.url.removeprefix("http://")
    host, port = url.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = connection.recv(4096).decode()
        assert connection.recv(4096) == b""  # and closed
    assert answer.startswith("HTTP/1.1 408"), answer
    assert "headers" in answer and time.monotonic() - started < 10
    with socket.create_connection((host, int(port)), timeout=30) as connection:  # silent
        assert connection.recv(4096).startswith(b"HTTP/1.1 408")


def test_open_event_streams_are_capped_per_user(service):
    """carol's jobs never start: their streams stay open; the fourth of hers is refused."""
    with service.client("carol") as carol:
        job = carol.post("/jobs", json={**SMALL, "seed": 41}).json()
        path = f"/jobs/{job['id']}/events/stream"
        with contextlib.ExitStack() as stack:
            lines = []  # held: a dropped line iterator closes its connection
            for _ in range(3):
                stream = stack.enter_context(carol.stream("GET", path))
                assert stream.status_code == 200
                lines.append(stream.iter_lines())
                assert next(lines[-1]).startswith("id:")  # the stream is open
            refused = carol.get(path)
            assert refused.status_code == 429 and "event streams" in refused.json()["detail"]
        time.sleep(1.5)  # the server notices the closed streams at its next poll
        with carol.stream("GET", path) as again:
            assert again.status_code == 200
        carol.post(f"/jobs/{job['id']}/cancel")


def test_specs_over_the_resource_limits_are_refused_before_any_work(service):
    """The attempts of issue 13: each is a 422 stating the estimate and the limit."""
    with service.client("frank") as frank:
        huge = frank.post("/jobs", json={"kind": "soc", "n": 20000})
        assert huge.status_code == 422, huge.text
        detail = huge.json()["detail"]
        assert detail.startswith("invalid spec: n, max_iterations: estimated peak memory 38.8 GiB")
        assert "LIFRNN_MAX_JOB_MEMORY_BYTES" in detail and "16.0 GiB" in detail

        long_fit = {
            "kind": "fit",
            "movements": {"directions_deg": [5.625 * k for k in range(64)], "duration": 10.0},
            "dt": 1e-6,
        }
        refused = frank.post("/jobs", json=long_fit)
        assert refused.status_code == 422, refused.text
        assert (
            "movements.directions_deg, movements.duration, dt: estimated peak memory"
            in (refused.json()["detail"])
        )

        fit = frank.post("/jobs", json={"kind": "fit", "network": {"kind": "soc", "n": 20}})
        assert fit.status_code == 201, fit.text  # frank's jobs never run: it stays queued
        long_trial = {"spontaneous": 60, "preparation": 60, "delay": 60}
        prepare = {"kind": "prepare", "network": {"job": fit.json()["id"]}, **long_trial}
        refused = frank.post("/jobs", json=prepare)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "spontaneous, preparation, delay" in detail and "artifact bytes" in detail
        assert "your own limit" in detail and "50.0 MiB" in detail
        short = frank.post("/jobs", json={**prepare, **dict.fromkeys(long_trial, 1)})
        assert short.status_code == 201, short.text  # the same within the limit
        jobs = frank.get("/jobs", params={"limit": 100}).json()["items"]
        assert sorted(job["kind"] for job in jobs) == ["fit", "prepare"]  # nothing else got in
        for job in jobs:
            frank.post(f"/jobs/{job['id']}/cancel")
