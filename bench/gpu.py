"""The GPU check, one short script: does the GPU give the CPU's answers, and how fast is it?

Run on demand on a machine with CUDA: ``python bench/gpu.py`` (about 3 minutes on one GPU).

1. Correctness against the CPU, on the same initial matrix and the same number of steps:
   - the SOC optimisation with the matrix-sign-function backend on the GPU against the Schur
     backend on the CPU (kao2021, N = 200, a fixed number of steps): max |W_gpu - W_cpu| and the
     abscissa after each step;
   - the simulator (``lifrnn_core.dynamics.simulate``, float64 and float32) on the GPU against the
     CPU: max |x_gpu - x_cpu| over 256 conditions.
2. The fit to recordings (``lifrnn_core.data_fitting.cross_validate``, 3 folds; at full size
   N = 200, 108 conditions, 182 neurons, 20 iterations): held-out R² and the largest difference
   of the predictions on the CPU (float64) and on the device (float64 and float32), seconds.
3. Timings, side by side with the CPU in the same run: seconds per SOC step at N = 1000 and 2000
   (the sign backend on the GPU, the Schur backend on the CPU; the full build's time is steps
   times that), and one 256-condition simulation (N = 200, 1.6 s at dt = 1 ms) with the ratio.

Without CUDA it says so and exits with status 2; ``--device cpu --small`` runs the same code on
the CPU at small sizes (the sign backend against the Schur one), which is what the test suite does
to keep this script working on machines without a GPU.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifrnn_core.data_fitting import DataFitConfig, cross_validate
from lifrnn_core.dynamics import background_input, simulate, spontaneous_state
from lifrnn_core.soc import initial_weights, optimise_inhibition
from lifrnn_core.soc_parameters import SOCParameters

logger = logging.getLogger("bench.gpu")

Row = dict[str, float | int | str]
"""One line of a printed table: column name to value."""

TAU_S = 0.15
DT_S = 1e-3


def synchronise(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seconds(function: Callable[[], object], device: str, repeats: int = 3) -> float:
    """The median of ``repeats`` timed calls after one warm-up call."""
    function()
    synchronise(device)
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        synchronise(device)
        durations.append(time.perf_counter() - start)
    return float(np.median(durations))


def fixed_steps(n: int, steps: int) -> SOCParameters:
    """kao2021 parameters that take exactly ``steps`` steps (the target is out of reach)."""
    return SOCParameters.for_method(
        "kao2021", n=n, n_excitatory=n // 2, max_iterations=steps, target_abscissa=-1e9
    )


def soc_agreement(device: str, n: int, steps: int) -> Row:
    """The sign backend on ``device`` against the Schur backend on the CPU."""
    params = fixed_steps(n, steps)
    W0 = initial_weights(params, np.random.default_rng(0))
    cpu = optimise_inhibition(W0, params, backend="schur")
    other = optimise_inhibition(W0, params, backend="sign", device=device)
    return {
        "n": n,
        "steps": steps,
        "max |W diff|": float(np.max(np.abs(other.weights - cpu.weights))),
        "max |abscissa diff|": float(np.max(np.abs(other.history - cpu.history))),
        "abscissa after": float(cpu.history[-1]),
    }


def simulation_problem(
    n: int, conditions: int, dtype: torch.dtype, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random stable relu network (spectral radius 0.8), its background input and
    ``conditions`` initial states around the spontaneous state."""
    generator = torch.Generator().manual_seed(0)
    W = torch.randn(n, n, generator=generator, dtype=torch.float64) * 0.8 / n**0.5
    W.fill_diagonal_(0.0)
    x_sp = spontaneous_state(n, generator)
    h = background_input(W, x_sp)
    x0 = x_sp + 0.2 * torch.randn(conditions, n, generator=generator, dtype=torch.float64)
    return W.to(device, dtype), h.to(device, dtype), x0.to(device, dtype)


def run_simulation(
    problem: tuple[torch.Tensor, torch.Tensor, torch.Tensor], steps: int
) -> torch.Tensor:
    W, h, x0 = problem
    with torch.no_grad():
        return simulate(W, x0, tau=TAU_S, dt=DT_S, steps=steps, h=h)


def simulation_agreement(device: str, n: int, conditions: int, steps: int) -> list[Row]:
    """The simulator on ``device`` against the CPU, float64 and float32."""
    rows: list[Row] = []
    for dtype in (torch.float64, torch.float32):
        cpu = run_simulation(simulation_problem(n, conditions, dtype, "cpu"), steps)
        other = run_simulation(simulation_problem(n, conditions, dtype, device), steps).cpu()
        scale = float(cpu.abs().max())
        rows.append(
            {
                "dtype": str(dtype).removeprefix("torch."),
                "max |x diff|": float((other - cpu).abs().max()),
                "relative": float((other - cpu).abs().max()) / scale,
            }
        )
    return rows


def soc_step_seconds(device: str, n: int, steps: int) -> Row:
    """Seconds per SOC step at ``n``: the sign backend on ``device``, Schur on the CPU."""
    params = fixed_steps(n, steps)
    W0 = initial_weights(params, np.random.default_rng(0))

    def on(backend: str, where: str) -> Callable[[], object]:
        return lambda: optimise_inhibition(W0, params, backend=backend, device=where)  # type: ignore[arg-type]

    cpu = seconds(on("schur", "cpu"), "cpu", repeats=1) / steps
    other = seconds(on("sign", device), device, repeats=1) / steps
    return {"n": n, "CPU s/step": cpu, "device s/step": other, "speed-up": cpu / other}


def simulation_seconds(device: str, n: int, conditions: int, steps: int) -> Row:
    """One simulation of ``conditions`` conditions, float32, on the CPU and on ``device``."""
    cpu_problem = simulation_problem(n, conditions, torch.float32, "cpu")
    problem = simulation_problem(n, conditions, torch.float32, device)
    cpu = seconds(lambda: run_simulation(cpu_problem, steps), "cpu")
    other = seconds(lambda: run_simulation(problem, steps), device)
    return {
        "conditions": conditions,
        "steps": steps,
        "CPU s": cpu,
        "device s": other,
        "speed-up": cpu / other,
    }


def data_fit_rows(device: str, n: int, conditions: int, neurons: int, iterations: int) -> list[Row]:
    """The fit to recordings (``cross_validate``, 3 folds, a kao2021 network, recordings it
    made) on the CPU in float64 and on ``device`` in float64 and float32: held-out R², the
    largest difference of the cross-validated predictions from the CPU's, seconds."""
    params = SOCParameters.for_method("kao2021", n=n)
    W = torch.from_numpy(
        optimise_inhibition(initial_weights(params, np.random.default_rng(0)), params).weights
    )
    n_e = params.n_excitatory
    generator = torch.Generator().manual_seed(1)
    x_sp = spontaneous_state(n, generator)
    x_star = x_sp + 0.3 * torch.randn(conditions, n, generator=generator, dtype=torch.float64)
    states = simulate(
        W, x_star, tau=TAU_S, dt=0.001, steps=400, h=background_input(W, x_sp), record_every=10
    )
    mixing = torch.rand(neurons, n_e, generator=generator, dtype=torch.float64)
    data = states[..., :n_e].clamp(min=0) @ mixing.T
    config = DataFitConfig(dt=0.01, max_iterations=iterations)
    rows: list[Row] = []
    reference: np.ndarray | None = None
    for where, dtype in (("cpu", torch.float64), (device, torch.float64), (device, torch.float32)):
        W_d, x_sp_d = W.to(where, dtype), x_sp.to(where, dtype)
        start = time.perf_counter()
        result = cross_validate(
            W_d,
            background_input(W_d, x_sp_d),
            x_sp_d,
            data.to(where, dtype),
            n_excitatory=n_e,
            config=config,
            folds=3,
            seed=0,
        )
        synchronise(where)
        elapsed = time.perf_counter() - start
        predicted = np.nan_to_num(result.predicted_heldout)
        reference = predicted if reference is None else reference
        rows.append(
            {
                "where": f"{where} {str(dtype).removeprefix('torch.')}",
                "R2 held-out": result.r2_heldout,
                "max |pred diff|": float(np.abs(predicted - reference).max()),
                "s": elapsed,
            }
        )
    return rows


def table(title: str, rows: list[Row]) -> str:
    """Rows as an aligned text table under ``title``."""
    columns = list(rows[0])
    cells = [
        [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        for row in rows
    ]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = [title, "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device to check (default cuda)")
    parser.add_argument("--small", action="store_true", help="small sizes: a quick dry run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: nothing measured (run this on a GPU machine)")
        return 2
    if args.small:
        check_n, check_steps, sizes, timing_steps = 40, 5, [60], 3
        conditions, sim_steps = 8, 50
    else:
        check_n, check_steps, sizes, timing_steps = 200, 30, [1000, 2000], 5
        conditions, sim_steps = 256, 1600
    name = torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else "CPU"
    print(f"device: {args.device} ({name}); torch {torch.__version__}")
    print(
        table(
            "SOC: sign backend on the device vs Schur on the CPU (same W0, same steps)",
            [soc_agreement(args.device, check_n, check_steps)],
        )
    )
    print(
        table(
            f"simulate: {conditions} conditions, N = 200, {sim_steps} steps, device vs CPU",
            simulation_agreement(args.device, 200, conditions, sim_steps),
        )
    )
    print(
        table(
            "SOC seconds per step (a full build is its steps times this)",
            [soc_step_seconds(args.device, n, timing_steps) for n in sizes],
        )
    )
    print(table("simulate, float32", [simulation_seconds(args.device, 200, conditions, sim_steps)]))
    fit_sizes = (40, 8, 30, 3) if args.small else (200, 108, 182, 20)
    print(
        table(
            "fit to recordings: cross_validate, 3 folds, N = {}, {} conditions, {} neurons, "
            "{} iterations".format(*fit_sizes),
            data_fit_rows(args.device, *fit_sizes),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
