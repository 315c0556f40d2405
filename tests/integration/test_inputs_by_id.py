"""Files and networks by id over HTTP (SQLite + file store, PostgreSQL + S3): uploads and their
limits, references checked at submit, chains of waiting jobs, and no way into another user's
data or the server's folders."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pytest
from helpers.services import FINAL, wait_for
from numpy.lib import format as npy_format
from safetensors.numpy import load as load_safetensors

from lifrnn_core.soc import SOCParameters, initial_weights

SMALL = {"kind": "soc", "n": 40, "radius": 4.0, "seed": 1}
KAO = {"kind": "soc", "method": "kao2021", "n": 40, "seed": 0}
MOVES = {"directions_deg": [0, 180], "duration": 0.2}
QUICK_PREPARE = {"spontaneous": 0.1, "preparation": 0.2, "delay": 0.1, "controllers": ["lqr"]}


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def upload(client, payload: bytes, name: str = "W.npy"):
    return client.post(
        "/files",
        params={"name": name},
        content=payload,
        headers={"content-type": "application/octet-stream"},
    )


def own_weights(seed: int = 0) -> np.ndarray:
    params = SOCParameters.for_method("hennequin2014", n=40, radius=4.0)
    return initial_weights(params, np.random.default_rng(seed))


def job_ids(client) -> set[str]:
    return {job["id"] for job in client.get("/jobs", params={"limit": 1000}).json()["items"]}


def test_an_uploaded_matrix_starts_an_soc_build(service):
    with service.client("alice") as alice:
        W = own_weights()
        stored = upload(alice, npy(W))
        assert stored.status_code == 201, stored.text
        record = stored.json()
        assert (record["name"], record["format"], record["shape"]) == ("W.npy", "npy", [40, 40])
        assert record["size"] == len(npy(W)) and len(record["sha256"]) == 64
        assert record["job_id"] is None
        assert alice.get(f"/files/{record['id']}").json()["sha256"] == record["sha256"]
        assert alice.get(f"/files/{record['id']}/content").content == npy(W)
        listed = alice.get("/files").json()
        assert record["id"] in [item["id"] for item in listed["items"]]
        assert listed["used_bytes"] >= record["size"]
        job = alice.post("/jobs", json={**SMALL, "initial_weights": record["id"]}).json()
        job = wait_for(alice, job["id"], FINAL, timeout=90)
        assert job["status"] == "succeeded", job["error"]
        network = next(a for a in job["artifacts"] if a["name"] == "network.safetensors")
        built = load_safetensors(alice.get(network["url"]).content)["W"]
        assert np.array_equal(built[:, :20], W[:, :20])  # excitation kept, inhibition optimised
        spec = next(a for a in job["artifacts"] if a["name"] == "spec.json")
        recorded = alice.get(spec["url"]).json()
        assert recorded["inputs"]["initial_weights"]["sha256"] == record["sha256"]


def test_uploads_over_the_limits_are_refused_and_nothing_is_kept(service):
    with service.client("alice") as alice, service.client("dave") as dave:
        before = alice.get("/files", params={"count": True}).json()["total"]
        header = io.BytesIO()
        npy_format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (30000, 30000)}
        )
        huge = upload(alice, header.getvalue() + bytes(1024))
        assert huge.status_code == 413 and "over the limit of 20000" in huge.json()["detail"]
        pickled = io.BytesIO()
        np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        refused = upload(alice, pickled.getvalue())
        assert refused.status_code == 422 and "pickle" in refused.json()["detail"]
        assert upload(alice, npy(np.eye(3)), "W.pkl").status_code == 422
        plain = alice.post("/files", params={"name": "W.npy"}, content=npy(np.eye(3)))
        assert plain.status_code == 415
        assert alice.get("/files", params={"count": True}).json()["total"] == before
        quota = upload(dave, npy(np.zeros((100, 100))))  # 80 kB of dave's 100 kB
        assert quota.status_code == 201
        over = upload(dave, npy(np.zeros((100, 100))) + b"")
        assert over.status_code == 429 and "byte quota" in over.json()["detail"]


def test_nothing_of_another_user_can_be_named_and_no_path_is_accepted(service):
    with service.client("alice") as alice, service.client("bob") as bob:
        file_id = upload(alice, npy(own_weights())).json()["id"]
        targets_id = upload(alice, npy(np.zeros((2, 101, 2))), "targets.npy").json()["id"]
        soc = wait_for(alice, alice.post("/jobs", json=KAO).json()["id"], FINAL, timeout=90)
        [network_id] = soc["network_ids"]
        network_file = next(a for a in soc["artifacts"] if a["name"] == "network.safetensors")
        server_file = str(service.server.home / "artifacts" / network_file["sha256"][:2])
        attempts = {
            "soc initial_weights, alice's upload": {**SMALL, "initial_weights": file_id},
            "soc initial_weights, alice's artifact": {
                **SMALL,
                "initial_weights": network_file["id"],
            },
            "fit network, alice's network": {"kind": "fit", "network": network_id},
            "fit network, alice's job": {"kind": "fit", "network": {"job": soc["id"]}},
            "fit targets, alice's file": {
                "kind": "fit",
                "network": KAO,
                "movements": {**MOVES, "targets_file": targets_id},
                "dt": 0.002,
            },
            "prepare, alice's network": {"kind": "prepare", "network": network_id},
            "retrain, alice's job": {"kind": "retrain", "network": {"job": soc["id"]}},
            "a server path": {**SMALL, "initial_weights": server_file},
            "a relative path": {"kind": "prepare", "network": "runs/fit/network.safetensors"},
            "the passwd file": {"kind": "prepare", "network": "/etc/passwd"},
        }
        before = job_ids(bob)
        for what, spec in attempts.items():
            answer = bob.post("/jobs", json=spec)
            assert answer.status_code == 422, (what, answer.text)
            detail = answer.json()["detail"].replace(server_file, "<what bob sent>")
            assert str(service.server.home) not in detail, what  # nothing of the server's
            assert "shape" not in detail and "(40, 40)" not in detail, what
        assert job_ids(bob) == before  # no job was made
        # a missing id and alice's id read the same
        missing = str(uuid.uuid4())
        mine = bob.post("/jobs", json={"kind": "prepare", "network": network_id}).json()["detail"]
        none = bob.post("/jobs", json={"kind": "prepare", "network": missing}).json()["detail"]
        assert mine == none.replace(missing, network_id)
        for path in (f"/files/{file_id}", f"/files/{file_id}/content"):
            assert bob.get(path).status_code == 404
        assert bob.delete(f"/files/{file_id}").status_code == 404
        assert file_id not in [item["id"] for item in bob.get("/files").json()["items"]]
        assert "path" not in alice.get(f"/networks/{network_id}").json()


def test_a_whole_chain_is_submitted_at_once_and_keeps_its_lineage(service):
    with service.client("alice") as alice:
        soc = alice.post("/jobs", json=KAO).json()
        fit = alice.post(
            "/jobs",
            json={"kind": "fit", "network": {"job": soc["id"]}, "movements": MOVES, "dt": 0.002},
        ).json()
        prepare = alice.post(
            "/jobs", json={"kind": "prepare", "network": {"job": fit["id"]}, **QUICK_PREPARE}
        ).json()
        retrain = alice.post(
            "/jobs",
            json={
                "kind": "retrain",
                "network": {"job": fit["id"]},
                "directions_deg": [90],
                "max_iterations": 3,
            },
        ).json()
        assert [job["status"] for job in (fit, prepare, retrain)] == ["waiting"] * 3
        assert fit["parent_job_id"] == soc["id"] and prepare["parent_job_id"] == fit["id"]
        waited = [e for e in alice.get(f"/jobs/{fit['id']}/events").json() if e["type"] == "status"]
        assert waited[0]["status"] == "waiting" and soc["id"] in waited[0]["message"]
        finished = {
            job["id"]: wait_for(alice, job["id"], FINAL, timeout=180)
            for job in (soc, fit, prepare, retrain)
        }
        assert {job["status"] for job in finished.values()} == {"succeeded"}, [
            job["error"] for job in finished.values()
        ]
        [soc_network] = finished[soc["id"]]["network_ids"]
        [fit_network] = finished[fit["id"]]["network_ids"]
        [retrained] = finished[retrain["id"]]["network_ids"]
        assert finished[prepare["id"]]["parent_network_id"] == fit_network
        lineage = alice.get(f"/networks/{retrained}").json()["lineage"]
        assert [n["id"] for n in lineage] == [fit_network, soc_network]
        statuses = [
            e["status"]
            for e in alice.get(f"/jobs/{retrain['id']}/events").json()
            if e["type"] == "status"
        ]
        assert statuses == ["waiting", "queued", "running", "succeeded"]
        refused = alice.delete(f"/jobs/{fit['id']}")
        assert refused.status_code == 409
        assert (
            prepare["id"] in refused.json()["detail"] and retrain["id"] in refused.json()["detail"]
        )
        for job in (retrain, prepare, fit, soc):
            assert alice.delete(f"/jobs/{job['id']}").status_code == 204


def test_a_failed_parent_fails_its_waiting_children_and_a_finished_one_is_refused(service):
    with service.client("alice") as alice:
        doomed = alice.post("/jobs", json={**KAO, "max_iterations": 1}).json()
        child = alice.post(
            "/jobs", json={"kind": "fit", "network": {"job": doomed["id"]}, "movements": MOVES}
        ).json()
        child = wait_for(alice, child["id"], FINAL, timeout=90)
        assert child["status"] == "failed" and child["error"] == f"parent job {doomed['id']} failed"
        late = alice.post("/jobs", json={"kind": "fit", "network": {"job": doomed["id"]}})
        assert late.status_code == 422 and "failed; it made no network" in late.json()["detail"]


def test_a_file_in_use_cannot_be_deleted(service):
    with service.client("carol") as carol:  # carol's jobs stay queued (max_running 0)
        file_id = upload(carol, npy(own_weights(2))).json()["id"]
        job = carol.post("/jobs", json={**SMALL, "initial_weights": file_id}).json()
        busy = carol.delete(f"/files/{file_id}")
        assert busy.status_code == 409 and job["id"] in busy.json()["detail"]
        carol.post(f"/jobs/{job['id']}/cancel")
        assert carol.delete(f"/files/{file_id}").status_code == 204
        assert carol.get(f"/files/{file_id}").status_code == 404


@pytest.mark.slow
@pytest.mark.parametrize("service", ["postgresql"], indirect=True)  # one store is enough here
def test_prepare_reads_the_fits_own_targets_like_lifrnn_run(service, tmp_path):
    """Non-default movements (minimum jerk, 15 cm): service and ``lifrnn run`` agree."""
    from helpers.services import cli, server_env

    moves = {"directions_deg": [0, 180], "duration": 0.2, "profile": "minimum_jerk"}
    fit_spec = {
        "kind": "fit",
        "network": KAO,
        "movements": {**moves, "distance": 0.15},
        "dt": 0.002,
    }
    with service.client("alice") as alice:
        fit = alice.post("/jobs", json=fit_spec).json()
        prepare = alice.post(
            "/jobs", json={"kind": "prepare", "network": {"job": fit["id"]}, **QUICK_PREPARE}
        ).json()
        served = wait_for(alice, prepare["id"], FINAL, timeout=180)
    assert served["status"] == "succeeded", served["error"]
    env = server_env(tmp_path / "home", None)
    (tmp_path / "fit.json").write_text(json.dumps(fit_spec))
    assert (
        cli(env, "run", str(tmp_path / "fit.json"), "--out", str(tmp_path / "fit")).returncode == 0
    )
    local_prepare = {
        "kind": "prepare",
        "network": str(tmp_path / "fit" / "network.safetensors"),
        **QUICK_PREPARE,
    }
    (tmp_path / "prepare.json").write_text(json.dumps(local_prepare))
    done = cli(env, "run", str(tmp_path / "prepare.json"), "--out", str(tmp_path / "p"), "--json")
    assert done.returncode == 0, done.stderr
    local = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(
        served["metrics"]["controllers"]["lqr"]["motor_r2"],
        local["metrics"]["controllers"]["lqr"]["motor_r2"],
        rtol=0,
        atol=1e-12,
    )
