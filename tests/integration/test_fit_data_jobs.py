"""Fitting a network to a recording through the service (SQLite + files, PostgreSQL + S3): the
NWB file and the network are uploads named by id, checked at submit against the file's summary,
and the job records its cross-validated scores, its baselines, its network and its figures."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import torch
from helpers.accounts import browser_cookies, sign_in
from helpers.services import FINAL, wait_for

from lifrnn.files import safetensors_bytes
from lifrnn.nwb import write_nwb
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters
from lifrnn_core.synthetic_recordings import fit_reaches, synthesize_recording


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """A small synthetic session (n = 30 network, 8 conditions, 20 trials each, 30 neurons) and
    the network that made it."""
    params = SOCParameters.for_method("kao2021", n=30)
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    reaches = fit_reaches(W, params.n_excitatory, conditions=8, max_iterations=10)
    synthetic = synthesize_recording(
        W,
        params.n_excitatory,
        x_sp=reaches.x_sp,
        h=reaches.h,
        x_star=reaches.x_star,
        C=reaches.C,
        trials_per_condition=20,
        neurons=30,
    )
    path = write_nwb(tmp_path_factory.mktemp("recording") / "session.nwb", synthetic)
    network = safetensors_bytes(
        {"W": W, "x_sp": reaches.x_sp, "h": reaches.h},
        {"n_excitatory": str(params.n_excitatory), "kind": "soc", "method": "kao2021"},
    )
    return {"nwb": Path(path).read_bytes(), "network": network}


def upload(client, payload: bytes, name: str) -> str:
    answer = client.post(
        "/files",
        params={"name": name},
        content=payload,
        headers={"content-type": "application/octet-stream"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def spec(network: str, data: str, **changes: object) -> dict[str, object]:
    return {
        "kind": "fit_data",
        "network": network,
        "data": data,
        "observation": "gaussian",  # the condition-averaged fit; spikes: test_fit_spikes_job
        "folds": 2,
        "max_iterations": 3,
        "dt": 0.02,
        **changes,
    }


def test_a_recording_is_fitted_cross_validated_and_kept_with_its_lineage(service, recording):
    with service.client("alice") as alice:
        data = upload(alice, recording["nwb"], "session.nwb")
        network = upload(alice, recording["network"], "network.safetensors")
        listed = alice.get(f"/files/{data}").json()
        assert listed["format"] == "nwb" and listed["recording"]["units"] == 30
        answer = alice.post("/jobs", json=spec(network, data))
        assert answer.status_code == 201, answer.text
        job = wait_for(alice, answer.json()["id"], FINAL, timeout=600)
        assert job["status"] == "succeeded", job.get("error")
        metrics = job["metrics"]
        assert metrics["conditions"] == 8
        assert 0 < metrics["neurons"] <= 30
        assert metrics["excluded_trials"]["failed"] + metrics["excluded_trials"]["missing_event"]
        for name in ("r2_train", "r2_heldout", "r2_heldout_random", "r2_heldout_mean_predictor"):
            assert isinstance(metrics[name], float), name
        assert len(metrics["r2_heldout_per_neuron"]) == metrics["neurons"]
        assert [row["fold"] for row in metrics["cv_table"]] == [1, 2, "mean"]
        assert 0 <= metrics["jpca_ratio_data"] <= 1
        names = {artifact["name"] for artifact in job["artifacts"]}
        assert {"network.safetensors", "data_fit.safetensors", "psth.png", "population.png"} <= (
            names
        )
        figure = next(a for a in job["artifacts"] if a["name"] == "population.png")
        drawn = alice.get(f"/artifacts/{figure['id']}")
        assert drawn.status_code == 200 and drawn.content.startswith(b"\x89PNG")
        networks = alice.get("/networks", params={"kind": "fit_data"}).json()["items"]
        assert any(item["job_id"] == job["id"] for item in networks)
        url = service.server.url
        cookie = browser_cookies(sign_in(url, service.tokens["alice"]))
        page = httpx.get(f"{url}/ui/jobs/{job['id']}", headers={"Cookie": cookie}, timeout=30)
        assert page.status_code == 200
        assert "psth.png" in page.text and "population.png" in page.text
        assert "r2_heldout" in page.text
        recorded = next(a for a in job["artifacts"] if a["name"] == "spec.json")
        provenance = alice.get(f"/artifacts/{recorded['id']}").json()["inputs"]
        assert provenance["data"]["file"] == data and provenance["network"]["file"] == network


def test_a_recording_is_checked_at_submit_and_is_its_owners_alone(service, recording):
    with service.client("alice") as alice, service.client("bob") as bob:
        data = upload(alice, recording["nwb"], "session.nwb")
        network = upload(alice, recording["network"], "network.safetensors")
        misnamed = alice.post(
            "/jobs", json=spec(network, data, recording={"align_event": "reach_onset_time"})
        )
        assert misnamed.status_code == 422
        detail = misnamed.json()["detail"]
        assert "'reach_onset_time'" in detail and "move_onset_time" in detail  # what it has
        window = {"window": [-5, 5]}
        too_many = alice.post("/jobs", json=spec(network, data, dt=0.001, recording=window))
        assert too_many.status_code == 422 and "limit is 5000" in too_many.json()["detail"]
        own_network = upload(bob, recording["network"], "network.safetensors")
        foreign = bob.post("/jobs", json=spec(own_network, data))
        assert foreign.status_code == 422
        assert "data: no file" in foreign.json()["detail"]
