"""Benchmark of progress honesty: how far a job's reported fraction strays from the share of
its run time that has passed, on demand.

``python bench/progress.py [--soc-seeds 0] [--skip-fit]`` runs, through the job runners
themselves (:func:`lifrnn.jobs.run_job`, what workers run), the default SOC build
(``lifrnn/examples/soc.json``: hennequin2014, n = 200, seed 0; other seeds with
``--soc-seeds``) and a ten-reach fit (the directions of ``lifrnn/examples/fit_ten.json``) on a
stored kao2021 n = 200 network, timing every progress report. It prints, for each, the largest
``|fraction - elapsed / total|`` over the reports, beside the same measure for the progress
formula lifrnn used before (SOC: the larger of iteration / max_iterations and the share of the
abscissa's way from its start to the target; fits: iteration / max_iterations), recomputed on
the same run, and their ratio. Goal: < 0.15.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import lifrnn.examples
from lifrnn.jobs import JobContext, run_job
from lifrnn.specs import parse_spec

EXAMPLES = Path(lifrnn.examples.__file__).parent

Report = tuple[float, float, str]
"""(seconds since the start, fraction, message)."""


def timed_run(spec_json: dict, inputs: dict[str, Path], out: Path) -> tuple[list[Report], float]:
    """Run ``spec_json``'s runner; its progress reports with their times, and the total."""
    reports: list[Report] = []
    start = time.perf_counter()
    context = JobContext(
        out_dir=out,
        progress=lambda f, m: reports.append((time.perf_counter() - start, f, m)),
        inputs=inputs,
    )
    result = run_job(parse_spec(spec_json), context)
    if result.status != "succeeded":
        raise SystemExit(f"{spec_json['kind']} failed: {result.error}")
    return reports, time.perf_counter() - start


def worst(points: list[tuple[float, float]], total: float) -> float:
    """Largest |fraction - elapsed / total| over (elapsed, fraction) points."""
    return max(abs(fraction - elapsed / total) for elapsed, fraction in points)


def soc_baseline(reports: list[Report], target: float, limit: int) -> list[tuple[float, float]]:
    """The old SOC fraction, recomputed from the messages' iterations and abscissae."""
    points, first = [], None
    for elapsed, _, message in reports:
        if not message.startswith("SOC iteration"):
            continue
        iteration = int(message.split()[2].rstrip(":"))
        abscissa = float(message.rsplit(" ", 1)[1])
        first = abscissa if first is None else first
        share = (first - abscissa) / max(first - target, 1e-12)
        points.append((elapsed, max(iteration / limit, share)))
    return points


def fit_baseline(reports: list[Report], limit: int) -> list[tuple[float, float]]:
    """The old fit fraction: iteration / max_iterations, at each iteration's report."""
    points = [(0.0, 0.0)]
    for elapsed, _, message in reports:
        if message.startswith("fit iteration"):
            iteration = int(message.split()[2].rstrip(":"))
            points.append((elapsed, iteration / limit))
    return points


def line(name: str, seconds: float, new: float, old: float) -> None:
    print(
        f"{name:<42} {seconds:7.1f} s   fraction vs time, max error: {new:.3f}   "
        f"before: {old:.3f}   ratio {old / new:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soc-seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--skip-fit", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="lifrnn-bench-progress-"))
    soc = json.loads((EXAMPLES / "soc.json").read_text())
    for seed in args.soc_seeds:
        spec = {**soc, "seed": seed}
        reports, total = timed_run(spec, {}, folder / f"soc-{seed}")
        limit = parse_spec(spec).parameters().max_iterations
        new = worst([(t, f) for t, f, _ in reports] + [(total, 1.0)], total)
        old = worst([*soc_baseline(reports, 0.15, limit), (total, 1.0)], total)
        line(f"SOC hennequin2014 n=200 seed {seed}", total, new, old)
    if args.skip_fit:
        return
    network_spec = {"kind": "soc", "method": "kao2021", "n": 200, "seed": 0}
    timed_run(network_spec, {}, folder / "network")
    ten = json.loads((EXAMPLES / "fit_ten.json").read_text())
    stored_id = "00000000-0000-0000-0000-000000000000"  # the runner reads the local copy
    fit_spec = {**ten, "network": stored_id}
    inputs = {"network": folder / "network" / "network.safetensors"}
    reports, total = timed_run(fit_spec, inputs, folder / "fit")
    new = worst([(t, f) for t, f, _ in reports] + [(total, 1.0)], total)
    old = worst([*fit_baseline(reports, parse_spec(fit_spec).max_iterations), (total, 1.0)], total)
    line("fit, ten reaches, stored kao2021 n=200", total, new, old)


if __name__ == "__main__":
    main()
