"""Benchmark of SOC builds: lifrnn's builder against the straightforward recipe, and the fixed
step against the adaptive one.

Run on demand: ``python bench/soc.py`` (``--full-n1000`` also runs a whole N=1000 fixed build,
which takes about an hour on 2 cores; ``--part`` runs one half only).

``recipe``: from the same initial W and seed, both run the same number of iterations; the abscissa
histories must agree to 1e-6. Prints seconds per iteration of each and their ratio, then the wall
time of a full N=200 hennequin2014 build and an N=1000 estimate.

``steps``: for each of ``--sizes`` (default 200 500 1000), hennequin2014 from one initial W
(seed 0) with ``step="fixed"`` and ``step="adaptive"``, side by side: steps taken, Schur forms
(every trial of the adaptive step costs one), seconds, final abscissa, inhibitory density,
||W||_F, amplification, and the ratios. Above ``--full-fixed-up-to`` the fixed build runs only
``--fixed-iterations`` steps and its time is extrapolated to the N=200 step count (marked ``~``;
its statistics are then not known).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lifrnn_core.soc import SOCParameters, SOCResult, amplification, build_soc, initial_weights

FIXED_STEPS_N200 = 2248
"""Steps of the full fixed-rate N=200 build of seed 0, the extrapolation's assumed count."""


def timed_build(params: SOCParameters, backend: str, seed: int = 0):
    start = time.perf_counter()
    result = build_soc(params, seed=seed, backend=backend)  # type: ignore[arg-type]
    return result, time.perf_counter() - start


def per_iteration(n: int, iterations: int) -> None:
    params = SOCParameters.for_method("hennequin2014", n=n, max_iterations=iterations)
    baseline, baseline_seconds = timed_build(params, "scipy")
    lifrnn, lifrnn_seconds = timed_build(params, "schur")
    difference = float(np.max(np.abs(baseline.history - lifrnn.history)))
    assert baseline.iterations == lifrnn.iterations == iterations
    assert difference < 1e-6, f"abscissa histories differ by {difference}"
    base_rate = baseline_seconds / iterations
    ours_rate = lifrnn_seconds / iterations
    print(
        f"N={n:5d}, {iterations} iterations: straightforward {base_rate * 1e3:8.2f} ms/it, "
        f"lifrnn {ours_rate * 1e3:8.2f} ms/it, speed-up x{base_rate / ours_rate:.2f} "
        f"(histories agree to {difference:.1e})"
    )


def _statistics(result: SOCResult) -> str:
    W = result.weights
    amplifies = f"{amplification(W):8.3f}" if result.spectral_abscissa < 1 else "       -"
    return (
        f"{result.spectral_abscissa:8.4f} {result.inhibitory_density:8.4f} "
        f"{np.linalg.norm(W):8.2f} {amplifies}"
    )


def fixed_versus_adaptive(
    sizes: list[int], full_fixed_up_to: int, fixed_iterations: int, seed: int = 0
) -> None:
    print(
        f"{'N':>5} {'step':>9} {'steps':>6} {'Schur':>6} {'seconds':>9} "
        f"{'abscissa':>8} {'inh.dens':>8} {'||W||_F':>8} {'amplif.':>8}"
    )
    for n in sizes:
        params = SOCParameters.for_method("hennequin2014", n=n)
        W0 = initial_weights(params, np.random.default_rng(seed))
        extrapolate = n > full_fixed_up_to
        fixed_params = (
            SOCParameters.for_method("hennequin2014", n=n, max_iterations=fixed_iterations)
            if extrapolate
            else params
        )
        start = time.perf_counter()
        fixed = build_soc(fixed_params, seed=seed, initial=W0)
        fixed_seconds = time.perf_counter() - start
        start = time.perf_counter()
        adaptive = build_soc(
            SOCParameters.for_method("hennequin2014", n=n, step="adaptive"), seed=seed, initial=W0
        )
        adaptive_seconds = time.perf_counter() - start
        if extrapolate:
            per_step = fixed_seconds / fixed.iterations
            fixed_forms = FIXED_STEPS_N200 + 1
            fixed_seconds = per_step * FIXED_STEPS_N200
            print(
                f"{n:5d} {'fixed':>9} {'~' + str(FIXED_STEPS_N200):>6} {'~' + str(fixed_forms):>6} "
                f"{'~' + format(fixed_seconds, '.0f'):>9}   (extrapolated: {fixed.iterations} "
                f"steps at {per_step:.3f} s, times the {FIXED_STEPS_N200} steps of N=200)"
            )
        else:
            fixed_forms = fixed.factorisations
            print(
                f"{n:5d} {'fixed':>9} {fixed.iterations:6d} {fixed_forms:6d} "
                f"{fixed_seconds:9.1f} {_statistics(fixed)}"
            )
        print(
            f"{n:5d} {'adaptive':>9} {adaptive.iterations:6d} {adaptive.factorisations:6d} "
            f"{adaptive_seconds:9.1f} {_statistics(adaptive)}  converged={adaptive.converged}"
        )
        print(
            f"{n:5d} {'ratio':>9} {'':6} {fixed_forms / adaptive.factorisations:5.1f}x "
            f"{fixed_seconds / adaptive_seconds:8.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["recipe", "steps", "all"], default="all")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--full-n1000", action="store_true", help="run a whole N=1000 build")
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument(
        "--full-fixed-up-to",
        type=int,
        default=500,
        help="larger N run the fixed step for --fixed-iterations steps and extrapolate",
    )
    parser.add_argument("--fixed-iterations", type=int, default=20)
    args = parser.parse_args()

    if args.part in ("steps", "all"):
        fixed_versus_adaptive(args.sizes, args.full_fixed_up_to, args.fixed_iterations)
    if args.part == "steps":
        return
    per_iteration(200, args.iterations)
    per_iteration(1000, 5)

    result, seconds = timed_build(SOCParameters.for_method("hennequin2014"), "schur", seed=0)
    print(
        f"full N=200 hennequin2014 build (seed 0): {seconds:.1f} s, {result.iterations} "
        f"iterations, abscissa {result.history[0]:.2f} -> {result.spectral_abscissa:.4f}"
    )
    params_1000 = SOCParameters.for_method("hennequin2014", n=1000)
    if args.full_n1000:
        result, seconds = timed_build(params_1000, "schur", seed=0)
        print(f"full N=1000 build: {seconds:.0f} s, {result.iterations} iterations")
    else:
        probe = SOCParameters.for_method("hennequin2014", n=1000, max_iterations=10)
        _, seconds = timed_build(probe, "schur", seed=0)
        print(f"N=1000: {seconds / 10:.2f} s/iteration (run with --full-n1000 for a whole build)")


if __name__ == "__main__":
    main()
