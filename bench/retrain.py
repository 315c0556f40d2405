"""Benchmark of full-network retraining: the current optimiser against the previous one, N=200.

Run on demand: ``python bench/retrain.py [network.safetensors] [--steps 200]``. Without a
network, the two-reach fit of lifrnn/examples/fit.json (kao2021 N=200, seed 0, 0° and 180°) is
made first (not timed). Both optimisers learn the same two new directions (60°, 120°) on 2
threads, in the same run:

- previous (before issue 18): x* of the new reaches from ``initial_states`` (W and C frozen), then
  Adam with projection from there, stopping only when one step changed the loss by less than
  1e-4 relatively (Adam's noise rarely allows it) or at the step limit, without saying which;
- current: x* of every reach from ``initial_states_and_readout`` (W frozen, C and x* by L-BFGS),
  then Adam with projection, stopping at the cost tolerance or when the best loss stops
  improving, and reporting ``converged`` / ``stop_reason``; once more keeping the kao2021 row
  sums exactly.

Each time includes the warm start, as in the job. Prints time, steps, stop reason, R² and the
row-sum range per run, and the ratio previous / current. Goal: current under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from lifrnn.jobs import JobContext, run_job
from lifrnn.networks import load_network
from lifrnn.specs import parse_spec
from lifrnn_core.dynamics import background_input, gain_function, simulate
from lifrnn_core.fitting import admissible_readout, r_squared
from lifrnn_core.retraining import (
    FittedNetwork,
    RetrainConfig,
    project_dale,
    retrain_full_network,
    retrain_initial_states,
    retrain_initial_states_and_readout,
)
from lifrnn_core.trajectories import reach_trajectories

GOAL_SECONDS = 60.0
NEW_DIRECTIONS = [60.0, 120.0]


def fitted_network(folder: Path) -> Path:
    """The default two-reach fit (kao2021 N=200, seed 0), made in ``folder``."""
    spec = parse_spec(
        {
            "kind": "fit",
            "network": {"kind": "soc", "method": "kao2021", "n": 200, "seed": 0},
            "movements": {"directions_deg": [0, 180]},
        }
    )
    result = run_job(spec, JobContext(out_dir=folder))
    if result.status != "succeeded":
        raise SystemExit(f"fit failed: {result.error}")
    return Path(result.artifacts["network.safetensors"])


def previous_full_network(
    network: FittedNetwork,
    new_targets: torch.Tensor,
    old_targets: torch.Tensor,
    config: RetrainConfig,
    new_x_star: torch.Tensor,
) -> tuple[list[float], list[float], int, torch.Tensor]:
    """The full-network loop as it was before issue 18 (a copy kept for this comparison).

    Returns (R^2 new, R^2 old, steps, W after).
    """
    W0, x_sp, n_e = network.W, network.x_sp, network.n_excitatory
    mask = (W0 != 0).to(W0.dtype) if config.keep_sparsity else None
    targets = torch.cat([old_targets, new_targets]).to(W0)
    n_old, n_total = old_targets.shape[0], targets.shape[0]
    weights = torch.tensor(config.output_weights, dtype=W0.dtype)
    radius2 = x_sp.shape[0] * n_total * config.state_radius**2
    gain_fn = gain_function(config.gain)
    W = W0.clone().requires_grad_(True)
    displacement = (torch.cat([network.x_star, new_x_star]) - x_sp).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([W, displacement], lr=config.learning_rate)

    def abscissa(matrix: torch.Tensor) -> float:
        return float(torch.linalg.eigvals(matrix.detach()).real.max())

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        x_star = x_sp + math.sqrt(radius2) / torch.linalg.norm(displacement) * displacement
        h = background_input(W, x_sp, config.gain)
        states = simulate(W, x_star, tau=config.tau, dt=config.dt, steps=targets.shape[1] - 1, h=h)
        rates = gain_fn(states[..., :n_e])
        null = torch.cat([x_star, x_sp[None]])[:, :n_e].T
        C = admissible_readout(rates, targets, null, dt=config.dt, output_weights=weights)
        outputs = rates @ C.T
        motor = ((outputs - targets) * weights).pow(2).sum() * config.dt / n_total
        penalty = torch.relu(torch.linalg.eigvals(W).real.max() - 0.95 * config.stability_bound)
        loss = motor + C.pow(2).sum() / (2 * n_e) + config.stability_penalty * penalty**2
        return loss, outputs

    history: list[float] = []
    for _ in range(config.max_iterations):
        optimiser.zero_grad()
        loss, _ = forward()
        loss.backward()  # type: ignore[no-untyped-call]
        previous = W.detach().clone()
        optimiser.step()
        with torch.no_grad():
            W.copy_(project_dale(W, n_e, mask))
            fraction = 1.0
            while abscissa(W) > config.stability_bound and fraction > 1e-6:
                fraction /= 2.0
                W.copy_(previous + fraction * (W - previous))
            if abscissa(W) > config.stability_bound:
                W.copy_(previous)
        history.append(float(loss.detach()))
        if len(history) > 1 and abs(history[-2] - history[-1]) <= (
            config.relative_tolerance * history[-2]
        ):
            break
    with torch.no_grad():
        _, outputs = forward()
    return (
        r_squared(outputs[n_old:], targets[n_old:]),
        r_squared(outputs[:n_old], targets[:n_old]),
        len(history),
        W.detach(),
    )


def row_sums(W: torch.Tensor) -> str:
    sums = W.sum(dim=1)
    return f"row sums {float(sums.min()):.4f} to {float(sums.max()):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network", nargs="?", help="a fitted network.safetensors")
    parser.add_argument("--steps", type=int, default=200, help="step limit of both optimisers")
    arguments = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(arguments.network) if arguments.network else fitted_network(Path(folder))
        saved = load_network(path)
        names = ("W", "h", "x_sp", "C", "x_star")
        tensors = {name: torch.from_numpy(saved.tensors[name]) for name in names}
        network = FittedNetwork(n_excitatory=saved.n_excitatory, **tensors)
        old = torch.from_numpy(saved.tensors["targets"])
    new = reach_trajectories(NEW_DIRECTIONS, duration=0.6, dt=float(saved.meta("dt"))).velocity
    abscissa = float(torch.linalg.eigvals(network.W).real.max())
    config = RetrainConfig(
        max_iterations=arguments.steps, stability_bound=min(abscissa + 0.05, 0.99)
    )
    n_old = old.shape[0]
    print(
        f"N={network.W.shape[0]}, trained {saved.meta('directions_deg')}, new {NEW_DIRECTIONS}, "
        f"step limit {arguments.steps}, {row_sums(network.W)} before"
    )

    start = time.perf_counter()
    initial = retrain_initial_states(
        network, new, old, config=config, generator=torch.Generator().manual_seed(0)
    )
    r2_new, r2_old, steps, W_previous = previous_full_network(
        network, new, old, config, initial.network.x_star[n_old:]
    )
    previous_seconds = time.perf_counter() - start
    limit = "hit the step limit, not reported" if steps == arguments.steps else "stopped"
    print(
        f"previous: {previous_seconds:7.1f} s, {steps} steps ({limit}), R² new "
        f"{min(r2_new):.4f}, old {min(r2_old):.4f}, {row_sums(W_previous)}"
    )

    seconds = {}
    for structure in ("none", "kao2021_row_sums"):
        current = RetrainConfig(
            max_iterations=arguments.steps,
            stability_bound=config.stability_bound,
            keep_structure=structure,
        )
        start = time.perf_counter()
        warm = retrain_initial_states_and_readout(
            network, new, old, config=current, generator=torch.Generator().manual_seed(0)
        )
        full = retrain_full_network(
            network,
            new,
            old,
            config=current,
            new_x_star=warm.network.x_star[n_old:],
            old_x_star=warm.network.x_star[:n_old],
        )
        seconds[structure] = time.perf_counter() - start
        print(
            f"current (keep_structure {structure}): {seconds[structure]:7.1f} s "
            f"(goal < {GOAL_SECONDS:.0f} s), warm start {warm.iterations} L-BFGS iterations "
            f"({warm.stop_reason}), {full.iterations} Adam iterations, converged "
            f"{full.converged} ({full.stop_reason}), R² new {min(full.r2_new):.4f}, old "
            f"{min(full.r2_old):.4f}, ΔW {full.weight_change:.3g}, {row_sums(full.network.W)}"
        )
    print(f"ratio previous / current: {previous_seconds / seconds['none']:.1f}x")


if __name__ == "__main__":
    main()
