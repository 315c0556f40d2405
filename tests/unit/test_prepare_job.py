"""``kind: "prepare"`` jobs: the spec, the runner and ``lifrnn run`` on a small fitted network."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers.networks import fitted_network_file
from pydantic import ValidationError
from typer.testing import CliRunner

from lifrnn.cli import app
from lifrnn.files import read_safetensors, write_safetensors
from lifrnn.jobs import JobContext, run_job
from lifrnn.jobs.prepare import TABLE_MEASURES
from lifrnn.specs import PrepareSpec, describe_validation_error, parse_spec


def lifrnn(*args: str) -> subprocess.CompletedProcess[str]:
    """``lifrnn ARGS`` in this process (typer's runner; ``python -m lifrnn`` in a new process is
    tests/unit/test_cli.py's first test); an exception the command does not turn into an exit
    status fails the test."""
    done = CliRunner().invoke(app, list(args), prog_name="lifrnn", catch_exceptions=False)
    return subprocess.CompletedProcess(args, done.exit_code, done.stdout, done.stderr)


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """A small fitted network: kao2021, n = 40, two 0.2 s reaches at dt = 2 ms."""
    return fitted_network_file(tmp_path_factory.mktemp("fit"))


def write_spec(tmp_path: Path, network: Path | str, **fields) -> Path:
    path = tmp_path / "prepare.json"
    spec = {
        "kind": "prepare",
        "network": str(network),
        "spontaneous": 0.1,
        "preparation": 0.2,
        "delay": 0.1,
        **fields,
    }
    path.write_text(json.dumps(spec))
    return path


NETWORK_ID = "0f0e0d0c-0000-4000-8000-000000000001"


def run_with(spec_file: Path, network: Path, out: Path):
    """Run a prepare spec in-process with ``network`` as its stored network."""
    data = json.loads(spec_file.read_text())
    spec = parse_spec({**data, "network": NETWORK_ID})
    return run_job(spec, JobContext(out_dir=out, inputs={"network": network}))


def test_defaults_follow_the_issue():
    spec = PrepareSpec(network=NETWORK_ID)
    assert spec.controllers == ["feedforward", "lqr", "min_energy", "thalamic_loop"]
    assert (spec.spontaneous, spec.preparation, spec.delay) == (0.4, 0.6, 0.6)
    assert spec.r2 == 0.1 and spec.state_weight == 0.0 and spec.movement is None
    assert parse_spec({"kind": "prepare", "network": NETWORK_ID}) == spec


def test_a_path_is_not_a_network_reference():
    with pytest.raises(ValidationError) as caught:
        parse_spec({"kind": "prepare", "network": "runs/fit/network.safetensors"})
    assert describe_validation_error(caught.value).startswith("network: expected an id")
    assert "never by path" in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"delay": -0.1}, "delay"),
        ({"controllers": ["pid"]}, "controllers.0"),
        ({"controllers": []}, "controllers"),
        ({"controllers": ["lqr", "lqr"]}, "listed more than once: lqr"),
        ({"r2": 0}, "r2"),
        ({"preparation": 0}, "preparation"),
        ({"state_weight": -1}, "state_weight"),
        ({"tau_thalamus": 0}, "tau_thalamus"),
        ({"speed": 2}, "speed"),
    ],
)
def test_bad_fields_are_named(fields, message):
    with pytest.raises(ValidationError, match=message):
        PrepareSpec(network=NETWORK_ID, **fields)


def test_prepare_job_compares_every_controller(tmp_path, fitted):
    out = tmp_path / "out"
    done = lifrnn("run", str(write_spec(tmp_path, fitted)), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = last_json_line(done.stdout)
    assert (result["kind"], result["status"], result["error"]) == ("prepare", "succeeded", None)
    metrics = result["metrics"]
    controllers = ["feedforward", "lqr", "min_energy", "thalamic_loop"]
    assert list(metrics["controllers"]) == controllers
    for name in controllers:
        entry = metrics["controllers"][name]
        for key in TABLE_MEASURES:
            assert len(entry[key]) == 2, (name, key)
    assert len(metrics["table"]) == 8
    assert metrics["riccati_residual"] < 1e-8
    assert metrics["closed_loop_abscissa"] < 0
    # By default the loop copies K (exact on the excitatory columns) ...
    assert metrics["loop_fit"] == {"method": "copy_gain"}
    assert metrics["loop_gain_error_excitatory"] < 1e-8
    assert 0 < metrics["loop_gain_error"] < 1
    assert metrics["loop_cost_ratio"] > 1  # LQR is the optimum
    assert max(metrics["controllers"]["min_energy"]["state_distance"]) < 1e-6
    assert max(metrics["controllers"]["min_energy"]["prepare_distance"]) < 1e-6
    assert set(metrics["checks"]) >= {"min_energy_reaches_x_star", "feedforward_farther"}
    assert set(result["artifacts"]) >= {
        "trials.safetensors",
        "controllers.safetensors",
        "prepare.png",
    }
    trials, metadata = read_safetensors(Path(result["artifacts"]["trials.safetensors"]))
    total = round((0.1 + 0.2 + 0.1 + 0.2) / 0.002)
    assert trials["lqr.states"].shape == (2, total + 1, 40)
    assert trials["lqr.inputs"].shape == (2, total, 40)
    assert trials["min_energy.outputs"].shape == (2, 101, 2)
    assert trials["time"].shape == (total + 1,)
    assert trials["lqr.prepare_distance"].shape == (2, total + 1)
    assert metadata["go_step"] == str(round(0.4 / 0.002))
    energy = (trials["lqr.inputs"].astype(np.float64) ** 2).sum(axis=(1, 2)) * 0.002
    assert np.allclose(energy, metrics["controllers"]["lqr"]["input_energy"], rtol=1e-5)
    gains, _ = read_safetensors(Path(result["artifacts"]["controllers.safetensors"]))
    assert gains["K"].shape == (40, 40) and gains["loop_Y"].shape == (80, 40)
    figure = Path(result["artifacts"]["prepare.png"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_loop_fitted_to_the_cost_is_opt_in(tmp_path, fitted):
    spec_file = write_spec(tmp_path, fitted, controllers=["lqr", "thalamic_loop"], loop_fit="cost")
    result = run_with(spec_file, fitted, tmp_path / "o")
    assert result.status == "succeeded", result.error
    fit = result.metrics["loop_fit"]
    assert fit["method"] == "cost"
    assert sum(fit["linearised_cost"]) <= sum(fit["linearised_cost_copy_k"])
    assert fit["converged"] == (fit["stop_reason"] in ("tolerance", "gradient"))
    assert result.metrics["loop_closed_loop_abscissa"] < 0


def test_the_default_loop_fit_leaves_the_spec_hash_unchanged():
    spec = PrepareSpec(network=NETWORK_ID)
    assert "loop_fit" not in spec.model_dump()
    assert PrepareSpec(network=NETWORK_ID, loop_fit="cost").model_dump()["loop_fit"] == "cost"


def test_one_controller_alone(tmp_path, fitted):
    spec_file = write_spec(tmp_path, fitted, controllers=["min_energy"])
    result = run_with(spec_file, fitted, tmp_path / "o")
    assert result.status == "succeeded", result.error
    assert list(result.metrics["controllers"]) == ["min_energy"]
    assert "riccati_residual" not in result.metrics


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"delay": -0.5}, "invalid spec: delay:"),
        ({"controllers": ["pid"]}, "invalid spec: controllers.0:"),
    ],
)
def test_bad_specs_exit_2_naming_the_field(tmp_path, fitted, fields, message):
    spec = write_spec(tmp_path, fitted, **fields)
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 2
    assert last_json_line(done.stdout)["error"].startswith(message)


def test_a_network_without_x_star_is_a_clear_failure(tmp_path):
    # What an soc job writes: W and n_excitatory, no fit.
    network = tmp_path / "network.safetensors"
    write_safetensors(network, {"W": np.zeros((40, 40))}, {"n_excitatory": "32"})
    spec = write_spec(tmp_path, network)
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 2  # judged from the file's header, before anything runs
    error = last_json_line(done.stdout)["error"]
    assert "not a fitted network" in error and "x* and a readout C" in error
    result = run_with(spec, network, tmp_path / "o")  # and by the runner, should one get by
    assert result.status == "failed"
    assert "not a fitted network" in (result.error or "") and "x_star" in (result.error or "")


def test_a_missing_network_is_a_clear_failure(tmp_path):
    spec = write_spec(tmp_path, tmp_path / "nope.safetensors")
    done = lifrnn("run", str(spec), "--out", str(tmp_path / "o"), "--json")
    assert done.returncode == 2
    assert "network: no such file" in last_json_line(done.stdout)["error"]


def test_periods_must_be_whole_steps_of_the_networks_dt(tmp_path, fitted):
    spec_file = write_spec(tmp_path, fitted, preparation=0.201)
    result = run_with(spec_file, fitted, tmp_path / "o")
    assert result.status == "failed"
    assert "preparation (0.201 s)" in (result.error or "")
