"""Throughput of lifrnn_core.dynamics.simulate against odeint and a bare Euler loop.

Run on demand: ``python bench/simulate.py [--threads N]``. Kao et al. 2021 sizes: 16 conditions of
an N = 200 relu network, 1.6 s at dt = 1 ms (1600 Euler steps), tau = 150 ms, a random stable W
(Gaussian, spectral radius 0.8, no autapses) and the background input that makes the spontaneous
state a fixed point. Prints seconds (median of a few repeats after a warm-up), neuron-steps per
second and the ratios to

- ``scipy.integrate.odeint`` called once per condition on the 200-dimensional ODE, evaluated at
  the same 1601 times (the naive approach; goal: lifrnn at least 20x faster), and
- a bare loop of the same matrix products, ``x = x + a * (-x + relu(x) @ W.T + h)``, recording
  nothing (the floor; goal: bare time / lifrnn time >= 0.67).

Both are timed for the autonomous network and with per-step inputs u (16 x 1600 x 200, held for
one step each, as an optimiser's inputs are). Without inputs the relaxation is smooth and odeint's
adaptive steps need only a few hundred evaluations; the held inputs force it to resolve every
step edge. It also times one forward + backward pass (backpropagation through time) with respect
to W and x0. Total runtime is about a minute on two idle cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import odeint

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifrnn_core.dynamics import background_input, simulate, spontaneous_state

N_NEURONS = 200
N_CONDITIONS = 16
TAU_S = 0.15
DT_S = 1e-3
STEPS = 1600
REPEATS = 5
NEURON_STEPS = N_NEURONS * N_CONDITIONS * STEPS


def median_seconds(function: Callable[[], object], repeats: int = REPEATS) -> float:
    function()  # warm-up
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def make_problem(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    W = torch.randn(N_NEURONS, N_NEURONS, generator=generator, dtype=torch.float64)
    W.fill_diagonal_(0.0)
    W *= 0.8 / torch.linalg.eigvals(W).abs().max()
    x_sp = spontaneous_state(N_NEURONS, generator)
    h = background_input(W, x_sp)
    x0 = x_sp + 0.5 * torch.randn(N_CONDITIONS, N_NEURONS, generator=generator, dtype=W.dtype)
    return W.to(dtype), x0.to(dtype), h.to(dtype)


def bare_loop(W: torch.Tensor, x0: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    a = DT_S / TAU_S
    x = x0
    for _ in range(STEPS):
        x = x + a * (-x + torch.relu(x) @ W.T + h)
    return x


def bare_loop_recorded(W: torch.Tensor, x0: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    a = DT_S / TAU_S
    x = x0
    states = [x]
    for _ in range(STEPS):
        x = x + a * (-x + torch.relu(x) @ W.T + h)
        states.append(x)
    return torch.stack(states, dim=1)


def bare_loop_inputs(
    W: torch.Tensor, x0: torch.Tensor, h: torch.Tensor, inputs: torch.Tensor
) -> torch.Tensor:
    a = DT_S / TAU_S
    x = x0
    for k in range(STEPS):
        x = x + a * (-x + torch.relu(x) @ W.T + h + inputs[:, k])
    return x


def odeint_per_condition(
    W: np.ndarray, x0: np.ndarray, h: np.ndarray, inputs: np.ndarray | None = None
) -> np.ndarray:
    """odeint on each condition; inputs (conditions, steps, n) are held for dt, like in Euler."""
    times = np.arange(STEPS + 1) * DT_S
    trajectories = []
    for condition in range(x0.shape[0]):

        def velocity(x: np.ndarray, t: float, condition: int = condition) -> np.ndarray:
            drive = h
            if inputs is not None:
                drive = h + inputs[condition, min(int(t / DT_S), STEPS - 1)]
            return (-x + W @ np.maximum(x, 0.0) + drive) / TAU_S

        trajectories.append(odeint(velocity, x0[condition], times))
    return np.stack(trajectories)


def report(label: str, seconds: float) -> None:
    print(f"  {label:<44s} {seconds * 1e3:9.1f} ms  {NEURON_STEPS / seconds:10.3e} neuron-steps/s")


def ratio(label: str, value: float, goal: str = "") -> None:
    print(f"  {label:<44s} {value:9.2f}   {goal}")


def bench_dtype(
    dtype: torch.dtype, odeint_seconds: tuple[float, float] | None
) -> tuple[float, float]:
    """Print the timings for one dtype; return the odeint times (measured once, in float64)."""
    W, x0, h = make_problem(dtype)
    generator = torch.Generator().manual_seed(1)
    inputs = 0.5 * torch.randn(N_CONDITIONS, STEPS, N_NEURONS, generator=generator).to(dtype)

    def lifrnn() -> torch.Tensor:
        return simulate(W, x0, tau=TAU_S, dt=DT_S, steps=STEPS, h=h)

    def lifrnn_with_inputs() -> torch.Tensor:
        return simulate(W, x0, tau=TAU_S, dt=DT_S, steps=STEPS, h=h, inputs=inputs)

    def bptt() -> None:
        W_leaf = W.clone().requires_grad_()
        x0_leaf = x0.clone().requires_grad_()
        x = simulate(W_leaf, x0_leaf, tau=TAU_S, dt=DT_S, steps=STEPS, h=h)
        x.square().mean().backward()

    print(f"\n{dtype}")
    lifrnn_seconds = median_seconds(lifrnn)
    report("lifrnn simulate (records all 1601 states)", lifrnn_seconds)
    bare_seconds = median_seconds(partial(bare_loop, W, x0, h))
    report("bare loop, no recording", bare_seconds)
    report("bare loop, list + stack", median_seconds(partial(bare_loop_recorded, W, x0, h)))
    inputs_seconds = median_seconds(lifrnn_with_inputs)
    report("lifrnn simulate, per-step inputs u (B = I)", inputs_seconds)
    bare_inputs_seconds = median_seconds(partial(bare_loop_inputs, W, x0, h, inputs))
    report("bare loop with inputs, no recording", bare_inputs_seconds)
    bptt_seconds = median_seconds(bptt)
    report("lifrnn forward + backward (BPTT, W and x0)", bptt_seconds)

    if odeint_seconds is None:
        # odeint works in float64; being the slow one, it is timed for one dtype only, and the
        # input-driven case (about 1 s per condition) only once.
        W_np, x0_np, h_np = W.double().numpy(), x0.double().numpy(), h.double().numpy()
        inputs_np = inputs.double().numpy()
        odeint_seconds = (
            median_seconds(partial(odeint_per_condition, W_np, x0_np, h_np), 3),
            median_seconds(partial(odeint_per_condition, W_np, x0_np, h_np, inputs_np), 1),
        )
        report("scipy odeint per condition (float64)", odeint_seconds[0])
        report("scipy odeint per condition, inputs u", odeint_seconds[1])
        reference = odeint_per_condition(W_np, x0_np, h_np)
        euler_gap = np.abs(lifrnn().double().numpy() - reference).max()
        print(f"  max |Euler (dt = 1 ms) - odeint| over the trajectories: {euler_gap:.2e}")
    ratio("odeint / lifrnn time", odeint_seconds[0] / lifrnn_seconds, "goal >= 20")
    ratio("odeint / lifrnn time, inputs u", odeint_seconds[1] / inputs_seconds, "goal >= 20")
    ratio("bare loop / lifrnn time", bare_seconds / lifrnn_seconds, "goal >= 0.67")
    ratio("bare loop / lifrnn time, inputs u", bare_inputs_seconds / inputs_seconds, "goal >= 0.67")
    ratio("BPTT / forward time", bptt_seconds / lifrnn_seconds)
    return odeint_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    threads = parser.parse_args().threads
    if threads is not None:
        torch.set_num_threads(threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{N_CONDITIONS} conditions x N = {N_NEURONS} x {STEPS} steps (dt = {DT_S * 1e3:g} ms), "
        f"relu, median of {REPEATS}"
    )
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if load >= cores:
        # Intra-op threads stall badly when other processes hold the cores: timings then mislead.
        print(f"warning: load average {load:.1f} on {cores} cores; timings will be noisy")
    odeint_seconds = bench_dtype(torch.float64, None)
    bench_dtype(torch.float32, odeint_seconds)


if __name__ == "__main__":
    main()
