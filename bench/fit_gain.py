"""What optimising x* adds to a fit: cost and min R^2 before and after the optimiser.

Run on demand: ``python bench/fit_gain.py [--seeds 0 1 2]``. The job's default setting: an N=200
kao2021 SOC network (seed 0, built once, not timed), float64 on the CPU, tolerances 1e-4 /
1e-4, at most 200 L-BFGS iterations, 0.2 m / 0.6 s tbg reaches. "Before" is the first guess:
random initial states ``x*`` (Gramian directions, global radius 0.2) with the readout ``C``
solved exactly for them (variable projection), no optimiser step; "after" is the fit's result.
Each fit's ``x_sp`` and first guess come from its seed, as in the ``fit`` job. Printed as a
markdown table (docs/science.md §5).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from lifrnn_core.arm import hand_torques_for_reaches
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.fitting import FitConfig, FitResult, fit_initial_states
from lifrnn_core.soc import SOCParameters, build_soc
from lifrnn_core.trajectories import SEED_DIRECTIONS_DEG, reach_trajectories

CASES: list[tuple[str, list[float]]] = [
    ("hand_velocity", [0.0, 180.0]),
    ("hand_velocity", list(SEED_DIRECTIONS_DEG)),
    ("hand_velocity", [18.0 * k for k in range(20)]),
    ("joint_torque", [0.0, 180.0]),
    ("joint_torque", list(SEED_DIRECTIONS_DEG)),
]
"""(target, directions in degrees): two, ten (the seed's) and twenty (every 18°) reaches."""

CONFIG = FitConfig(cost_tolerance=1e-4, relative_tolerance=1e-4, max_iterations=200)
"""The ``fit`` job's defaults (the library's ``cost_tolerance`` is 5e-4)."""


def targets_for(target: str, directions: list[float]) -> torch.Tensor:
    """(movements, time, 2) hand velocity (m/s) or joint torques (N m) every millisecond."""
    reaches = reach_trajectories(directions, dtype=torch.float64)
    if target == "joint_torque":
        return hand_torques_for_reaches(reaches)
    return reaches.velocity


def fit(W: torch.Tensor, n_e: int, targets: torch.Tensor, seed: int) -> tuple[FitResult, float]:
    """One fit as the job runs it; returns the result and its wall time in seconds."""
    generator = torch.Generator().manual_seed(seed)
    x_sp = spontaneous_state(W.shape[0], generator)
    h = background_input(W, x_sp)
    start = time.perf_counter()
    result = fit_initial_states(
        W, h, x_sp, targets, n_excitatory=n_e, config=CONFIG, generator=generator
    )
    return result, time.perf_counter() - start


def span(values: list[float], digits: str) -> str:
    """``a`` or ``a–b`` (min–max over seeds)."""
    low, high = min(values), max(values)
    if f"{low:{digits}}" == f"{high:{digits}}":
        return f"{low:{digits}}"
    return f"{low:{digits}}–{high:{digits}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    seeds = parser.parse_args().seeds
    params = SOCParameters.for_method("kao2021")
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    print(f"kao2021 N={params.n} (SOC seed 0), fit seeds {seeds}; ranges are min–max over seeds")
    print(
        "| target | reaches | cost_move before | cost_move after | min R² before | "
        "min R² after | iterations | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for target, directions in CASES:
        targets = targets_for(target, directions)
        runs = [fit(W, params.n_excitatory, targets, seed) for seed in seeds]
        results = [result for result, _ in runs]
        print(
            f"| {target} | {len(directions)} "
            f"| {span([r.cost_move_initial for r in results], '.2e')} "
            f"| {span([r.cost_move for r in results], '.2e')} "
            f"| {span([min(r.r2_initial) for r in results], '.4f')} "
            f"| {span([min(r.r2) for r in results], '.4f')} "
            f"| {span([float(r.iterations) for r in results], '.0f')} "
            f"| {float(np.median([s for _, s in runs])):.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
