"""Benchmark of the prepare job: time of each controller and of the whole job, N=200, CPU.

Run on demand: ``python bench/prepare.py [network.safetensors]``. Without an argument the
two-reach fit of lifrnn/examples/fit.json (kao2021, seed 0) is made first (not timed). Times: the
Riccati equation (LQR gain), the loop fit, each controller's trials (both movements, default
trial 0.4 / 0.6 / 0.6 delay / 0.6 s at 1 ms), and the whole ``prepare`` job with all four
controllers through :func:`lifrnn.jobs.run_job` (artifacts and figure included). Goal: the
whole job in under 3 minutes on 2 cores.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lifrnn.jobs import JobContext, run_job
from lifrnn.networks import load_network
from lifrnn.specs import parse_spec
from lifrnn_core.control import fit_thalamic_loop, preparatory_feedback
from lifrnn_core.preparation import CONTROLLERS, TrialTiming, hold_input, run_trial

GOAL_SECONDS = 180.0


def fitted_network(folder: Path) -> Path:
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
    return folder / "network.safetensors"


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(sys.argv[1]) if len(sys.argv) > 1 else fitted_network(Path(scratch) / "fit")
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
        loop = fit_thalamic_loop(
            feedback.K,
            n_e,
            torch.Generator().manual_seed(0),
            drives=hold_input(W, h, x_star).numpy(),
        )
        print(f"thalamic loop fit: {time.perf_counter() - start:6.2f} s")

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
            print(
                f"{name:14s} {seconds:6.2f} s  energy {np.round(trial.input_energy.numpy(), 1)}"
                f"  distance at go {np.round(trial.distance_at_go.numpy(), 4)}"
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


if __name__ == "__main__":
    main()
