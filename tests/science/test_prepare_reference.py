"""Acceptance of optimal preparation on the two-reach N=200 fit (docs/science.md §6, issue 4).

Runs the real ``fit`` job (lifrnn/examples/fit.json: kao2021 network, reaches at 0 and 180 degrees),
then ``prepare`` jobs on its ``network.safetensors``. Measured on this fit (seed 0), trial
0.4 / 0.6 / 0.6 delay / 0.6 s:

| controller    | energy        | state distance | prepare distance | motor R2      |
|---------------|---------------|----------------|------------------|---------------|
| feedforward   | 202.5 / 48.4  | 0.36 / 0.41    | 0.086 / 0.105    | 0.963 / 0.960 |
| lqr           | 206.1 / 51.8  | 0.22 / 0.26    | 6e-4 / 4e-4      | 0.999 / 0.999 |
| min_energy    | 103.4 / 25.7  | 0 / 0          | 0 / 0            | 0.999 / 0.999 |
| thalamic_loop | 219.6 / 65.1  | 0.30 / 0.44    | 0.042 / 0.041    | 0.940 / 0.968 |

The issue asks LQR for ``state_distance < 0.05`` at the go cue. With Kao's state cost (the readout's
observability Gramian) LQR pulls in only the directions the readout will see — the readout
distance is 6e-4 and the reaches are perfect — and leaves the rest to the network's slow decay
(closed-loop abscissa -0.23, time constant 0.65 s), so the Euclidean distance stays at 0.22-0.26.
We assert what holds for the paper's cost and show that a small state weight (0.1) makes LQR
reach x* in every direction as well.
"""

import pytest
from helpers.networks import fitted_network_file
from safetensors import safe_open

from lifrnn.jobs import JobContext, run_job
from lifrnn.specs import parse_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return fitted_network_file(
        tmp_path_factory.mktemp("fit"), n=200, movements={"directions_deg": [0, 180]}, seed=0
    )


@pytest.fixture(scope="module")
def prepared(fitted, tmp_path_factory):
    result = prepare_on(fitted, {}, tmp_path_factory.mktemp("prepare"))
    assert result.status == "succeeded", result.error
    return result


STORED = "00000000-0000-4000-8000-0000000000a1"
"""The id the specs name; the runner reads the file given as that input."""


def prepare_on(network, fields, out):
    spec = parse_spec({"kind": "prepare", "network": STORED, **fields})
    return run_job(spec, JobContext(out_dir=out, inputs={"network": network}))


def controller(result, name):
    return result.metrics["controllers"][name]


def test_riccati_solution_and_closed_loop(prepared):
    assert prepared.metrics["riccati_residual"] < 1e-8
    assert prepared.metrics["closed_loop_abscissa"] < prepared.metrics["open_loop_abscissa"] < 0


def test_min_energy_reaches_x_star_and_produces_the_reaches(prepared):
    entry = controller(prepared, "min_energy")
    assert max(entry["state_distance"]) < 0.05
    assert min(entry["motor_r2"]) >= 0.95
    assert max(entry["persistence"]) < 0.05  # held through the 0.6 s delay


def test_lqr_prepares_what_the_readout_sees_and_produces_the_reaches(prepared):
    entry = controller(prepared, "lqr")
    assert max(entry["prepare_distance"]) < 0.05
    assert min(entry["motor_r2"]) >= 0.95
    # The Euclidean criterion misses with Kao's Q (see the module docstring).
    assert min(entry["state_distance"]) > 0.05
    # ... which is why the headline distance (and the check) is the prepare distance.
    assert prepared.metrics["checks"]["lqr_reaches_x_star"] is True


def test_lqr_with_a_state_weight_reaches_x_star(fitted, tmp_path):
    result = prepare_on(fitted, {"controllers": ["lqr"], "state_weight": 0.1}, tmp_path)
    assert result.status == "succeeded", result.error
    entry = controller(result, "lqr")
    assert max(entry["state_distance"]) < 0.05
    assert min(entry["motor_r2"]) >= 0.95


def test_min_energy_uses_no_more_energy_than_lqr(prepared):
    least = controller(prepared, "min_energy")["input_energy"]
    lqr = controller(prepared, "lqr")["input_energy"]
    assert all(m <= q for m, q in zip(least, lqr, strict=True))


def test_feedforward_ends_farther_from_x_star(prepared):
    naive = controller(prepared, "feedforward")
    for name in ("lqr", "min_energy"):
        other = controller(prepared, name)
        assert min(naive["state_distance"]) > max(other["state_distance"])
        assert min(naive["prepare_distance"]) > max(other["prepare_distance"])
    assert min(naive["motor_r2"]) < min(controller(prepared, "lqr")["motor_r2"])


def test_the_default_loop_copies_k_and_produces_the_reaches(prepared):
    metrics = prepared.metrics
    assert metrics["loop_fit"] == {"method": "copy_gain"}
    # Exact on the excitatory columns; the inhibitory ones (49 % of ||K||_F) it cannot see.
    assert metrics["loop_gain_error_excitatory"] < 1e-8
    assert metrics["loop_gain_error"] < 0.55
    assert metrics["loop_closed_loop_abscissa"] < 0
    assert metrics["loop_cost_ratio"] > 1  # LQR is the optimum
    assert min(controller(prepared, "thalamic_loop")["motor_r2"]) >= 0.9


def test_artifacts_hold_every_controllers_trial(prepared):
    with safe_open(prepared.artifacts["trials.safetensors"], framework="np") as handle:
        names = set(handle.keys())
        states = handle.get_tensor("lqr.states")
    for name in ("feedforward", "lqr", "min_energy", "thalamic_loop"):
        assert {f"{name}.states", f"{name}.inputs", f"{name}.outputs"} <= names
    assert states.shape == (2, 2201, 200)
    assert prepared.metrics["seconds"] < 60
