"""Benchmark of the prepare job: time of each controller and of the whole job, N=200, CPU.

Run on demand: ``python bench/prepare.py [network.safetensors]``. Without an argument the
two-reach fit of lifrnn/examples/fit.json (kao2021, seed 0) is made first (not timed). Times: the
Riccati equation (LQR gain), the job's default loop (the copy of K,
:func:`lifrnn_core.control.copy_gain_loop`), each controller's trials (both movements, default
trial 0.4 / 0.6 / 0.6 delay / 0.6 s at 1 ms), and the whole default ``prepare`` job with all four
controllers through :func:`lifrnn.jobs.run_job` (artifacts and figure included). Goal: the
whole job in under 3 minutes on 2 cores.

Then, at the paper's trial (``delay: 0``), the loop fitted to the preparation cost
(:func:`lifrnn_core.preparation.fit_thalamic_loop`, the job's opt-in ``loop_fit: "cost"``,
timed) beside the copy of K, measured in the same run: motor R^2 per movement and preparation
cost relative to LQR's, for two reaches and (with ``--ten``, fitting ten reaches at 0, 20, ...,
180 degrees first) ten. Goal (issue 18): R^2 >= 0.95 and cost ratio <= 1.5.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lifrnn.jobs import JobContext, run_job
from lifrnn.jobs.prepare import fitted_targets
from lifrnn.networks import load_network
from lifrnn.specs import parse_spec
from lifrnn_core.control import copy_gain_loop, preparatory_feedback
from lifrnn_core.fitting import r_squared
from lifrnn_core.preparation import (
    CONTROLLERS,
    TrialTiming,
    fit_thalamic_loop,
    hold_input,
    preparation_cost,
    prepare_metrics,
    run_trial,
)

GOAL_SECONDS = 180.0


def fitted_network(folder: Path, directions: list[float] | None = None) -> Path:
    spec = parse_spec(
        {
            "kind": "fit",
            "network": {"kind": "soc", "method": "kao2021", "n": 200, "seed": 0},
            "movements": {"directions_deg": directions or [0, 180]},
        }
    )
    result = run_job(spec, JobContext(out_dir=folder))
    if result.status != "succeeded":
        raise SystemExit(f"fit failed: {result.error}")
    return folder / "network.safetensors"


def loop_at_delay_zero(path: Path) -> None:
    """Fitted loop vs the copy of K at the paper's trial: motor R^2 and cost / LQR's."""
    saved = load_network(path)
    t = {k: torch.from_numpy(v).double() for k, v in saved.tensors.items()}
    W, h, x_sp, C, x_star = (t[k] for k in ("W", "h", "x_sp", "C", "x_star"))
    n_e, tau, dt = saved.n_excitatory, float(saved.meta("tau")), float(saved.meta("dt"))
    targets = fitted_targets(saved, torch.float64, torch.device("cpu"))
    feedback = preparatory_feedback(saved.W, saved.tensors["C"], n_e, r2=0.1)
    timing = TrialTiming(spontaneous=0.4, preparation=0.6, delay=0.0, movement=0.6, dt=dt)
    hold = hold_input(W, h, x_star)
    Q, P = torch.from_numpy(feedback.Q), torch.from_numpy(feedback.X)
    begin, go = timing.steps("spontaneous"), timing.go_step

    def measure(controller: str, loop=None) -> tuple[np.ndarray, torch.Tensor, float]:  # type: ignore[no-untyped-def]
        trial = run_trial(
            W, h, x_sp, x_star, C, n_excitatory=n_e, controller=controller,  # type: ignore[arg-type]
            timing=timing, tau=tau, K=torch.from_numpy(feedback.K), loop=loop,
        )  # fmt: skip
        overlap = min(trial.outputs.shape[1], targets.shape[1])
        r2 = np.asarray(r_squared(trial.outputs[:, :overlap], targets[:, :overlap]))
        cost = preparation_cost(
            trial.states[:, begin : go + 1], trial.inputs[:, begin:go], x_star, hold, Q,
            feedback.r2, tau=tau, dt=dt, cost_to_go=P,
        )  # fmt: skip
        distance = prepare_metrics(trial.states, trial.inputs, x_star, x_sp, Q, timing)
        return r2, cost, float(distance.prepare_distance.max())

    _, lqr_cost, lqr_distance = measure("lqr")
    print(f"  lqr: max prepare distance {lqr_distance:.2g}")
    copy = copy_gain_loop(feedback.K, n_e, torch.Generator().manual_seed(0), drives=hold.numpy())
    start = time.perf_counter()
    fitted = fit_thalamic_loop(
        W, h, x_sp, x_star, feedback, n_e, torch.Generator().manual_seed(0), tau=tau
    )
    fit_seconds = time.perf_counter() - start
    for label, loop in (("copy of K (today)", copy), ("fitted to the cost", fitted.loop)):
        r2, cost, distance = measure("thalamic_loop", loop)
        ratio = float(cost.sum() / lqr_cost.sum())
        print(
            f"  loop, {label:18s}: motor R2 {np.round(r2, 3)} (min {r2.min():.3f}), cost / LQR "
            f"{ratio:.2f}, max prepare distance {distance:.2g}"
        )
    print(
        f"  loop fit: {fit_seconds:.1f} s, {fitted.iterations} L-BFGS iterations, converged "
        f"{fitted.converged} ({fitted.stop_reason})"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        arguments = [a for a in sys.argv[1:] if a != "--ten"]
        path = Path(arguments[0]) if arguments else fitted_network(Path(scratch) / "fit")
        saved = load_network(path)
        tensors = {k: torch.from_numpy(v) for k, v in saved.tensors.items()}
        W, h, x_sp, C, x_star = (tensors[k] for k in ("W", "h", "x_sp", "C", "x_star"))
        n_e = saved.n_excitatory
        tau, dt = float(saved.meta("tau")), float(saved.meta("dt"))
        print(
            f"network {path}: n={W.shape[0]}, {x_star.shape[0]} movements, torch threads "
            f"{torch.get_num_threads()}"
        )

        start = time.perf_counter()
        feedback = preparatory_feedback(saved.W, saved.tensors["C"], n_e, r2=0.1)
        print(
            f"Riccati (scipy solve_continuous_are) + Q: {time.perf_counter() - start:6.2f} s, "
            f"residual {feedback.residual:.1e}"
        )
        start = time.perf_counter()
        loop = copy_gain_loop(
            feedback.K,
            n_e,
            torch.Generator().manual_seed(0),
            drives=hold_input(W, h, x_star).numpy(),
        )
        print(f"thalamic loop (copy of K, the default): {time.perf_counter() - start:6.2f} s")

        timing = TrialTiming(spontaneous=0.4, preparation=0.6, delay=0.6, movement=0.6, dt=dt)
        K = torch.from_numpy(feedback.K)
        for name in CONTROLLERS:
            start = time.perf_counter()
            trial = run_trial(
                W,
                h,
                x_sp,
                x_star,
                C,
                n_excitatory=n_e,
                controller=name,  # type: ignore[arg-type]
                timing=timing,
                tau=tau,
                K=K,
                loop=loop,
            )
            seconds = time.perf_counter() - start
            measures = prepare_metrics(
                trial.states, trial.inputs, x_star, x_sp, torch.from_numpy(feedback.Q), timing
            )
            print(
                f"{name:14s} {seconds:6.2f} s  energy {np.round(trial.input_energy.numpy(), 1)}"
                f"  prepare distance {np.round(measures.prepare_distance.numpy(), 4)}"
            )

        spec = parse_spec({"kind": "prepare", "network": "00000000-0000-4000-8000-000000000000"})
        start = time.perf_counter()
        context = JobContext(out_dir=Path(scratch) / "prepare", inputs={"network": path})
        result = run_job(spec, context)
        seconds = time.perf_counter() - start
        print(
            f"whole prepare job (4 controllers, artifacts, figure): {seconds:6.2f} s "
            f"(goal < {GOAL_SECONDS:.0f} s, ratio {GOAL_SECONDS / seconds:.0f}x under), "
            f"status {result.status}"
        )
        print("paper's trial (delay 0), two reaches:")
        loop_at_delay_zero(path)
        if "--ten" in sys.argv:
            ten = [20.0 * k for k in range(10)]
            print("paper's trial (delay 0), ten reaches:")
            loop_at_delay_zero(fitted_network(Path(scratch) / "fit_ten", ten))


if __name__ == "__main__":
    main()
