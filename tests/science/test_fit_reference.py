"""Acceptance of the cost-to-go fit on full-size (N=200) networks (docs/science.md §5).

Runs the real ``fit`` job (inline kao2021 SOC build, then the fit) and checks what it saved by
re-simulating it with a plain Euler loop written here, from the stored tensors alone; the other
fits read that job's network as a stored input, as a chain on the service does.
"""

import json

import numpy as np
import pytest
from safetensors import safe_open

from lifrnn.jobs import JobContext, run_job
from lifrnn.specs import parse_spec
from lifrnn_core.trajectories import SEED_DIRECTIONS_DEG

pytestmark = pytest.mark.slow


STORED = "00000000-0000-0000-0000-000000000000"
"""The id a spec names its stored network by (the runner reads the local copy it is given)."""


def run_fit(tmp_path, network=None, **fields):
    if network is None:
        return run_job(parse_spec({"kind": "fit", **fields}), JobContext(out_dir=tmp_path))
    spec = parse_spec({"kind": "fit", "network": STORED, **fields})
    return run_job(spec, JobContext(out_dir=tmp_path, inputs={"network": network}))


@pytest.fixture(scope="module")
def two_reaches(tmp_path_factory):
    """The default fit: an inline kao2021 N=200 build, then two reaches."""
    return run_fit(tmp_path_factory.mktemp("two-reaches"))


def plain_euler_readout(path: str) -> tuple[np.ndarray, dict]:
    """Re-simulate a saved fit with nothing but numpy and its metadata."""
    with safe_open(path, framework="np") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        meta = handle.metadata()
    W, h, C, x_star = tensors["W"], tensors["h"], tensors["C"], tensors["x_star"]
    tau, dt = float(meta["tau"]), float(meta["dt"])
    n_e = int(meta["n_excitatory"])
    steps = round(float(meta["duration"]) / dt)
    assert meta["gain"] == "relu"
    outputs = np.zeros((x_star.shape[0], steps + 1, C.shape[0]))
    for k, x in enumerate(x_star):
        x = x.copy()
        for t in range(steps + 1):
            outputs[k, t] = C @ np.maximum(x[:n_e], 0.0)
            x = x + dt / tau * (-x + W @ np.maximum(x, 0.0) + h)
    return outputs, meta


def test_two_reaches_fit_and_the_artifact_reproduces_them(two_reaches):
    result = two_reaches
    assert result.status == "succeeded", result.error
    metrics = result.metrics
    assert metrics["cost_move"] < 5e-4
    assert min(metrics["r2"]) >= 0.99 and len(metrics["r2"]) == 2
    assert metrics["null_residual"] < 1e-10
    outputs, meta = plain_euler_readout(result.artifacts["network.safetensors"])
    assert json.loads(meta["directions_deg"]) == [0.0, 180.0]
    with safe_open(result.artifacts["targets.safetensors"], framework="np") as handle:
        recorded = handle.get_tensor("outputs")
        targets = handle.get_tensor("targets")
    assert targets.shape == (2, 601, 2)
    assert np.abs(outputs - recorded).max() < 1e-4


def test_ten_directions_in_one_job(tmp_path, two_reaches):
    network = two_reaches.artifacts["network.safetensors"]
    result = run_fit(tmp_path, network, movements={"directions_deg": list(SEED_DIRECTIONS_DEG)})
    assert result.status == "succeeded", result.error
    assert len(result.metrics["r2"]) == 10
    assert min(result.metrics["r2"]) >= 0.99


def test_joint_torque_targets(tmp_path, two_reaches):
    """Torques (about 1 N m at the shoulder) fit less closely than velocities: the readout
    penalty ||C||^2 / (2 n_e) weighs more against larger targets; we measure R^2 0.96-0.98."""
    network = two_reaches.artifacts["network.safetensors"]
    movements = {"directions_deg": [0, 90], "target": "joint_torque"}
    result = run_fit(tmp_path, network, movements=movements)
    assert result.status == "succeeded", result.error
    assert min(result.metrics["r2"]) >= 0.95
