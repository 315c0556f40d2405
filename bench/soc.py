"""Benchmark of SOC builds: lifrnn's builder against the straightforward recipe.

Run on demand: ``python bench/soc.py`` (``--full-n1000`` also runs a whole N=1000 build, which
takes a long time on 2 cores). From the same initial W and seed, both run the same number of
iterations; the abscissa histories must agree to 1e-6. Prints seconds per iteration of each and
their ratio, then the wall time of a full N=200 hennequin2014 build and an N=1000 estimate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lifrnn_core.soc import SOCParameters, build_soc


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--full-n1000", action="store_true", help="run a whole N=1000 build")
    args = parser.parse_args()

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
