"""What remembering L-BFGS's evaluations saves: the two fits with and without it, side by side.

Run on demand: ``python bench/lbfgs_memory.py`` (about a minute on 2 cores). Both fits that
drive ``torch.optim.LBFGS`` one iteration at a time use :class:`lifrnn_core.lbfgs.
RememberingClosure`; with ``memory=0`` it remembers nothing, which is how they ran before it
(each step re-evaluates the point the previous line search ended on, and the accepted point's
cost is computed once more). For each fit the script prints the seconds and the cost
evaluations of both, the ratio, and whether the results are the same:

1. ``fit_to_data`` (fitting to recordings): a kao2021 network (n = 50) fitted back to 27
   conditions of its own noisy rates (80 neurons), 60 iterations, 2 ms Euler steps in 10 ms bins.
2. ``fit_initial_states`` (the reach fit): n = 200 kao2021, eight reaches, 60 iterations.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lifrnn_core.data_fitting as data_fitting
import lifrnn_core.fitting as fitting
from lifrnn_core.dynamics import background_input, gain_function, simulate, spontaneous_state
from lifrnn_core.fitting import FitConfig, random_initial_states
from lifrnn_core.lbfgs import RememberingClosure
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters
from lifrnn_core.trajectories import reach_trajectories


class CountingClosure(RememberingClosure):
    """Counts the evaluations computed, over every closure made while it is installed."""

    computed = 0

    def __call__(self) -> torch.Tensor:
        before = self.evaluations
        loss = super().__call__()
        CountingClosure.computed += self.evaluations - before
        return loss


def timed(
    module: Any, memory: int, run: Callable[[], Any], forwards: Callable[[], int]
) -> tuple[float, int, Any]:
    """Run ``run`` with ``module``'s closure remembering ``memory`` evaluations; returns
    (seconds, gradient evaluations + plain forward runs, result)."""
    original = module.RememberingClosure
    module.RememberingClosure = functools.partial(CountingClosure, memory=memory)
    CountingClosure.computed = 0
    start_forwards = forwards()
    try:
        began = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - began
    finally:
        module.RememberingClosure = original
    return seconds, CountingClosure.computed + forwards() - start_forwards, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(2)

    # 1. fit_to_data
    params = SOCParameters.for_method("kao2021", n=50)
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    n_e = params.n_excitatory
    generator = torch.Generator().manual_seed(0)
    x_sp = spontaneous_state(50, generator)
    h = background_input(W, x_sp)
    x_star = random_initial_states(W, x_sp, 27, generator)
    states = simulate(W, x_star, tau=0.15, dt=0.001, steps=690, h=h, record_every=10)
    mixing = torch.rand(80, n_e, generator=generator, dtype=torch.float64)
    rates = gain_function("relu")(states[..., :n_e]) @ mixing.T
    data = rates + 0.05 * rates.std() * torch.randn(rates.shape, generator=generator)
    config = data_fitting.DataFitConfig(max_iterations=args.iterations)
    plain_runs = [0]
    objective_call = data_fitting._Objective.__call__

    def counted(self: Any, *arguments: Any) -> Any:
        if not torch.is_grad_enabled():
            plain_runs[0] += 1
        return objective_call(self, *arguments)

    data_fitting._Objective.__call__ = counted  # type: ignore[method-assign]

    def fit_data() -> Any:
        return data_fitting.fit_to_data(
            W,
            h,
            x_sp,
            data,
            n_excitatory=n_e,
            config=config,
            generator=torch.Generator().manual_seed(0),
        )

    # 2. fit_initial_states
    reach_params = SOCParameters.for_method("kao2021", n=200)
    W_reach = torch.from_numpy(build_soc(reach_params, seed=0).weights)
    x_sp_reach = spontaneous_state(200, torch.Generator().manual_seed(0))
    h_reach = background_input(W_reach, x_sp_reach)
    targets = reach_trajectories([45.0 * k for k in range(8)], duration=0.6, dt=2e-3).velocity
    reach_config = FitConfig(dt=2e-3, max_iterations=args.iterations, cost_tolerance=0.0)
    plain_reach = [0]
    simulate_original = fitting.simulate

    def counted_simulate(*arguments: Any, **keywords: Any) -> Any:
        if not torch.is_grad_enabled():
            plain_reach[0] += 1
        return simulate_original(*arguments, **keywords)

    fitting.simulate = counted_simulate  # type: ignore[assignment]

    def fit_reaches() -> Any:
        return fitting.fit_initial_states(
            W_reach,
            h_reach,
            x_sp_reach,
            targets,
            n_excitatory=reach_params.n_excitatory,
            config=reach_config,
            generator=torch.Generator().manual_seed(0),
        )

    print(f"{'fit':<40} {'remembering':>12} {'evals':>6} {'plain':>8} {'evals':>6} {'ratio':>6}")
    for name, module, run, counter in (
        ("fit_to_data (27 conditions, n = 50)", data_fitting, fit_data, plain_runs),
        ("fit_initial_states (8 reaches, n = 200)", fitting, fit_reaches, plain_reach),
    ):
        plain_s, plain_evals, plain = timed(module, 0, run, lambda c=counter: c[0])
        kept_s, kept_evals, kept = timed(module, 8, run, lambda c=counter: c[0])
        same = torch.equal(plain.x_star, kept.x_star)
        print(
            f"{name:<40} {kept_s:10.1f} s {kept_evals:6d} {plain_s:6.1f} s {plain_evals:6d} "
            f"{kept_s / plain_s:6.2f}   same x*: {same}"
        )
    data_fitting._Objective.__call__ = objective_call  # type: ignore[method-assign]
    fitting.simulate = simulate_original


if __name__ == "__main__":
    main()
