"""What optimising x* adds: every fit reports its first guess (random x*, readout solved exactly)
beside the optimised result (docs/science.md §5)."""

import math

import pytest
import torch

from lifrnn.jobs import JobContext, run_job
from lifrnn.specs import parse_spec
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.fitting import (
    FitConfig,
    admissible_readout,
    fit_initial_states,
    initial_state_basis,
    r_squared,
    simulate_movements,
)
from lifrnn_core.soc import SOCParameters, build_soc
from lifrnn_core.trajectories import reach_trajectories

N = 40
CONFIG = FitConfig(dt=2e-3, cost_tolerance=1e-6, max_iterations=4)


@pytest.fixture(scope="module")
def network():
    params = SOCParameters.for_method("kao2021", n=N)
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    x_sp = spontaneous_state(N, torch.Generator().manual_seed(0))
    return W, x_sp, background_input(W, x_sp), params.n_excitatory


def targets(directions=(0.0, 120.0, 240.0)):
    return reach_trajectories(list(directions), duration=0.1, dt=2e-3).velocity


def fit(network, seed=1, config=CONFIG, **kwargs):
    W, x_sp, h, n_e = network
    return fit_initial_states(
        W,
        h,
        x_sp,
        targets(),
        n_excitatory=n_e,
        config=config,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_optimised_cost_is_at_most_the_first_guess(network, seed):
    result = fit(network, seed)
    assert result.cost <= result.cost_initial
    assert result.cost_move <= result.cost_move_initial
    assert result.history[0] <= result.cost_move_initial
    assert len(result.r2_initial) == 3 and all(math.isfinite(v) for v in result.r2_initial)


def test_the_first_guess_is_the_exact_readout_for_the_random_initial_states(network):
    """Rebuilt here from public pieces: x* = x_sp + kappa V theta_0 at the global radius, C the
    admissible least-squares readout for it, no optimiser step."""
    W, x_sp, h, n_e = network
    result = fit(network, seed=1)
    _, basis = initial_state_basis(W, x_sp)
    n_modes = basis.shape[1]
    spread = torch.linspace(1.0, 0.05, n_modes, dtype=torch.float64)
    theta = torch.randn(3, n_modes, generator=torch.Generator().manual_seed(1), dtype=W.dtype)
    displacement = (theta * spread) @ basis.T
    x_star = x_sp + 0.2 * math.sqrt(N * 3) / torch.linalg.norm(displacement) * displacement
    target = targets()
    silent = torch.zeros(2, n_e, dtype=W.dtype)
    steps = target.shape[1] - 1
    states, _ = simulate_movements(W, h, x_star, silent, tau=0.15, dt=2e-3, steps=steps)
    rates = torch.relu(states[..., :n_e])
    null_states = torch.cat([x_star, x_sp[None]])[:, :n_e].T
    weights = torch.tensor([1.0, 3.0], dtype=W.dtype)
    C = admissible_readout(rates, target, null_states, dt=2e-3, output_weights=weights)
    outputs = rates @ C.T
    motor = float(((outputs - target) * weights).pow(2).sum()) * 2e-3 / 3
    assert result.cost_move_initial == pytest.approx(motor, rel=1e-9)
    assert result.cost_initial == pytest.approx(motor + float(C.pow(2).sum()) / (2 * n_e))
    assert result.r2_initial == pytest.approx(r_squared(outputs, target), abs=1e-10)


def test_the_first_guess_does_not_depend_on_how_long_the_fit_runs(network):
    short = fit(network, config=FitConfig(dt=2e-3, cost_tolerance=1e-6, max_iterations=1))
    full = fit(network)
    assert full.iterations > short.iterations
    assert (short.cost_move_initial, short.r2_initial) == (full.cost_move_initial, full.r2_initial)


def test_a_frozen_readout_fit_reports_its_first_guess_with_that_readout(network):
    trained = fit(network)
    refit = fit(network, seed=5, readout=trained.C)
    assert refit.cost_move <= refit.cost_move_initial
    assert len(refit.r2_initial) == 3


def test_the_fit_job_reports_the_metrics_before_optimisation(tmp_path):
    spec = parse_spec(
        {
            "kind": "fit",
            "network": {"kind": "soc", "method": "kao2021", "n": N},
            "movements": {"directions_deg": [0, 180], "duration": 0.1},
            "dt": 0.002,
            "max_iterations": 3,
        }
    )
    metrics = run_job(spec, JobContext(out_dir=tmp_path)).metrics
    assert len(metrics["r2_initial"]) == 2
    assert metrics["r2_min_initial"] == min(metrics["r2_initial"])
    assert metrics["cost"] <= metrics["cost_initial"]
    assert metrics["cost_move"] <= metrics["cost_move_initial"]
    # a 2 ms step is 0.15 of a kao2021 network's fastest time scale (rho(W - I) = 11, tau 0.15)
    assert metrics["euler_step_ratio"] == pytest.approx(11 * 0.002 / 0.15, rel=1e-6)
    assert metrics["euler_step_coarse"] is False
