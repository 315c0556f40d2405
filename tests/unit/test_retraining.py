"""Retraining: Dale's law, sparsity and the stability bound hold after every step."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lifrnn.jobs import JobContext, run_job
from lifrnn.specs import parse_spec
from lifrnn_core.retraining import (
    FittedNetwork,
    RetrainConfig,
    backtrack_to_bound,
    project_dale,
    retrain_full_network,
    retrain_initial_states,
)
from lifrnn_core.trajectories import reach_trajectories


@settings(max_examples=40, deadline=None)
@given(
    W=arrays(np.float64, (12, 12), elements=st.floats(-5, 5)),
    n_excitatory=st.integers(1, 11),
    use_mask=st.booleans(),
)
def test_projection_obeys_dale_no_autapses_and_mask(W, n_excitatory, use_mask):
    mask = torch.from_numpy((np.arange(144).reshape(12, 12) % 3 != 0).astype(np.float64))
    projected = project_dale(torch.from_numpy(W), n_excitatory, mask if use_mask else None)
    assert (projected[:, :n_excitatory] >= 0).all()
    assert (projected[:, n_excitatory:] <= 0).all()
    assert (projected.diagonal() == 0).all()
    if use_mask:
        assert (projected[mask == 0] == 0).all()
    # Entries already admissible are kept (it is the nearest admissible matrix).
    again = project_dale(projected, n_excitatory, mask if use_mask else None)
    assert torch.equal(again, projected)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    spec = parse_spec(
        {
            "kind": "fit",
            "network": {"kind": "soc", "method": "kao2021", "n": 50},
            "movements": {"directions_deg": [0, 180], "duration": 0.2},
            "dt": 0.002,
        }
    )
    result = run_job(spec, JobContext(out_dir=out))
    assert result.status == "succeeded", result.error
    return Path(result.artifacts["network.safetensors"])


def load_fitted(path: Path) -> FittedNetwork:
    from lifrnn.networks import load_network

    saved = load_network(path)
    tensors = {k: torch.from_numpy(saved.tensors[k]) for k in ("W", "h", "x_sp", "C", "x_star")}
    return FittedNetwork(n_excitatory=saved.n_excitatory, **tensors)


def test_full_network_keeps_constraints_after_every_step(fitted):
    network = load_fitted(fitted)
    old = reach_trajectories([0, 180], duration=0.2, dt=0.002).velocity
    new = reach_trajectories([60, 120], duration=0.2, dt=0.002).velocity
    config = RetrainConfig(dt=0.002, max_iterations=15, stability_bound=0.85)
    initial = retrain_initial_states(
        network, new, old, config=config, generator=torch.Generator().manual_seed(0)
    )
    n_e = network.n_excitatory
    zero_pattern = network.W == 0
    seen: list[float] = []

    def inspect(W: torch.Tensor) -> None:
        assert (W[:, :n_e] >= 0).all() and (W[:, n_e:] <= 0).all()
        assert (W.diagonal() == 0).all()
        assert (W[zero_pattern] == 0).all()  # sparsity kept
        seen.append(float(torch.linalg.eigvals(W).real.max()))

    result = retrain_full_network(
        network, new, old, config=config, new_x_star=initial.network.x_star[2:], inspect=inspect
    )
    assert len(seen) == result.iterations
    assert max(seen) <= 0.85
    assert result.spectral_abscissa_after <= 0.85
    assert result.weight_change > 0
    assert result.network.x_star.shape == (4, 50)
    assert len(result.r2_new) == 2 and len(result.r2_old) == 2


def test_initial_states_mode_freezes_w_and_c(fitted):
    network = load_fitted(fitted)
    old = reach_trajectories([0, 180], duration=0.2, dt=0.002).velocity
    new = reach_trajectories([90], duration=0.2, dt=0.002).velocity
    result = retrain_initial_states(
        network,
        new,
        old,
        config=RetrainConfig(dt=0.002, max_iterations=5),
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(result.network.W, network.W) and torch.equal(result.network.C, network.C)
    assert result.weight_change == 0.0
    # The frozen readout stays silent at the new initial state.
    new_state = result.network.x_star[2]
    assert float((network.C @ new_state[: network.n_excitatory]).abs().max()) < 1e-10


NETWORK_ID = "0f0e0d0c-0000-4000-8000-000000000002"


def run_retrain(network: Path, out: Path, **fields):
    spec = parse_spec({"kind": "retrain", "network": NETWORK_ID, **fields})
    return run_job(spec, JobContext(out_dir=out, inputs={"network": network}))


def test_retrain_job_records_lineage_and_both_modes(fitted, tmp_path):
    result = run_retrain(fitted, tmp_path, directions_deg=[90], max_iterations=5)
    assert result.status == "succeeded", result.error
    assert set(result.metrics) >= {"initial_states", "full_network", "comparison"}
    for mode in ("initial_states", "full_network"):
        keys = {
            "r2_new",
            "r2_old",
            "weight_change",
            "spectral_abscissa_after",
            "iterations",
            "seconds",
            "converged",
            "stop_reason",
            "reachable",
            "best_r2_possible",
            "readout_rank",
            "reachability_reason",
        }
        assert keys <= set(result.metrics[mode])
    # Fitted on 0° and 180°, the frozen readout has no y-row: 90° is out of its reach.
    assert result.metrics["initial_states"]["reachable"] is False
    assert result.metrics["initial_states"]["readout_rank"] == 1
    assert result.metrics["full_network"]["reachable"] is True
    assert "structure" in result.metrics["full_network"]
    from lifrnn.files import read_safetensors

    tensors, metadata = read_safetensors(Path(result.artifacts["network.safetensors"]))
    assert metadata["parent_network"] == NETWORK_ID
    assert tensors["targets"].shape == (3, 101, 2)  # trained then new: prepare reads them
    assert len(metadata["parent_sha256"]) == 64
    assert json.loads(metadata["directions_deg"]) == [0.0, 180.0, 90.0]
    assert tensors["x_star"].shape == (3, 50)
    assert Path(result.artifacts["retrain.png"]).read_bytes()[:4] == b"\x89PNG"


def test_retrain_job_runs_all_three_modes_and_keeps_the_row_sums(fitted, tmp_path):
    result = run_retrain(
        fitted,
        tmp_path,
        directions_deg=[90],
        max_iterations=5,
        mode="all",
        keep_structure="kao2021_row_sums",
    )
    assert result.status == "succeeded", result.error
    modes = ("initial_states", "initial_states_and_readout", "full_network")
    assert set(modes) <= set(result.metrics)
    readout = result.metrics["initial_states_and_readout"]
    assert readout["reachable"] and readout["weight_change"] == 0.0
    assert result.metrics["full_network"]["structure"]["row_sum_deviation"] < 1e-12
    comparison = result.metrics["comparison"]
    assert "readout adapting" in comparison["summary"]
    assert comparison["r2_new_mean_initial_states_and_readout"] >= 0.9
    for mode in modes[:2]:
        assert Path(result.artifacts[f"network_{mode}.safetensors"]).exists()
    assert Path(result.artifacts["retrain.png"]).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"directions_deg": [0]}, "already trained"),
        ({"directions_deg": [90], "stability_bound": 0.1}, "exceeds the stability bound"),
    ],
)
def test_bad_retrain_input_fails_clearly(fitted, tmp_path, fields, message):
    result = run_retrain(fitted, tmp_path, max_iterations=2, **fields)
    assert result.status == "failed"
    assert message in (result.error or "")


def test_retrain_needs_a_fitted_network(tmp_path):
    soc = run_job(parse_spec({"kind": "soc", "n": 30, "radius": 3}), JobContext(out_dir=tmp_path))
    result = run_retrain(Path(soc.artifacts["network.safetensors"]), tmp_path / "r")
    assert result.status == "failed"
    assert "not a fitted network" in (result.error or "")


def test_sequence_runs_each_reach_from_the_prepared_state(fitted):
    from lifrnn_core.control import preparatory_feedback
    from lifrnn_core.sequences import run_sequence, shortest_interval

    network = load_fitted(fitted)
    targets = reach_trajectories([180, 0], duration=0.2, dt=0.002).velocity
    K = torch.from_numpy(
        preparatory_feedback(network.W.numpy(), network.C.numpy(), network.n_excitatory).K
    )
    result = run_sequence(
        network, [1, 0], targets, interval=0.1, tau=0.15, dt=0.002, controller="lqr", K=K
    )
    # reach (101 samples) + interval (50 steps) + reach (100 more samples)
    assert result.outputs.shape == (101 + 50 + 100, 2)
    assert float(result.outputs[101:151].abs().max()) == 0.0  # gated during the interval
    assert len(result.segment_r2) == 2 and len(result.transition_errors) == 1
    assert result.segment_r2[0] > 0.9
    gap = shortest_interval(
        network,
        [1, 0],
        targets,
        longest=0.1,
        step=0.02,
        r2_required=0.0,
        tau=0.15,
        dt=0.002,
        K=K,
    )
    assert gap == pytest.approx(0.02)


def test_sequence_of_unknown_direction_fails_clearly(fitted, tmp_path):
    result = run_retrain(fitted, tmp_path, directions_deg=[90], max_iterations=2, sequence=[0, 45])
    assert result.status == "failed"
    assert "sequence direction 45" in (result.error or "")


def test_backtracking_keeps_the_largest_step_under_the_stability_bound() -> None:
    previous = torch.diag(torch.tensor([-1.0, -2.0], dtype=torch.float64))  # abscissa -1
    stepped = torch.diag(torch.tensor([3.0, -2.0], dtype=torch.float64))  # abscissa 3
    W = stepped.clone()
    # halving the step: abscissa 1, 0, then -0.5 at an eighth of it (the first at most -0.4)
    assert backtrack_to_bound(W, previous, bound=-0.4) == pytest.approx(-0.5)
    torch.testing.assert_close(W, previous + 0.125 * (stepped - previous))
    W = stepped.clone()
    assert backtrack_to_bound(W, previous, bound=5.0) == pytest.approx(3.0)  # step kept
    assert torch.equal(W, stepped)
    W = stepped.clone()
    assert backtrack_to_bound(W, previous, bound=-1.5) == pytest.approx(-1.0)  # back to previous
    assert torch.equal(W, previous)
