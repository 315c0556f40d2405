"""Benchmark of cost-to-go fits: wall time to cost_move < 5e-4 at N=200, float64, on the CPU.

Run on demand: ``python bench/fit.py``. The network (kao2021 SOC, seed 0) is built once and not
timed; each fit is timed from its call to its return. Also fits the hennequin2014 network, whose
weaker amplification limits how low the cost goes (reported, not a goal).
"""

from __future__ import annotations

import time

import torch

from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.fitting import FitConfig, fit_initial_states
from lifrnn_core.soc import SOCParameters, build_soc
from lifrnn_core.trajectories import SEED_DIRECTIONS_DEG, reach_trajectories


def fit(method: str, directions: list[float], goal_seconds: float | None) -> None:
    params = SOCParameters.for_method(method)  # type: ignore[arg-type]
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    generator = torch.Generator().manual_seed(0)
    x_sp = spontaneous_state(W.shape[0], generator)
    h = background_input(W, x_sp)
    targets = reach_trajectories(directions).velocity
    start = time.perf_counter()
    result = fit_initial_states(
        W,
        h,
        x_sp,
        targets,
        n_excitatory=params.n_excitatory,
        config=FitConfig(cost_tolerance=5e-4),
        generator=generator,
    )
    seconds = time.perf_counter() - start
    goal = f" (goal < {goal_seconds:.0f} s)" if goal_seconds else ""
    print(
        f"{method:13s} {len(directions):2d} reaches: {seconds:6.2f} s{goal}, "
        f"{result.iterations} iterations, cost_move {result.cost_move:.2e} ({result.stop_reason}), "
        f"min R^2 {min(result.r2):.4f}"
    )


def main() -> None:
    fit("kao2021", [0.0, 180.0], 10)
    fit("kao2021", list(SEED_DIRECTIONS_DEG), 30)
    fit("hennequin2014", [0.0, 180.0], None)


if __name__ == "__main__":
    main()
