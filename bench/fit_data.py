"""Fitting to recordings at MC_Maze's size: reading, preprocessing and a 5-fold evaluated fit.

Run on demand: ``python bench/fit_data.py`` (defaults: 182 units, 2,300 trials, 108 conditions,
N = 200 kao2021 network; about 7 minutes on 2 cores). ``--small`` runs a quick version.

1. A synthetic NWB file of that size is written once (not timed): spikes of neurons mixing the
   network's excitatory rates from random amplified initial states (the file's truth is not
   what is measured here; ``lifrnn synth-nwb`` makes a file from a *fitted* network).
2. Reading and preprocessing, timed stage by stage: ``read_nwb`` (pynwb), then
   ``preprocess`` (bin, average per condition, smooth, soft-normalise) against the
   straightforward way measured in the same run (every trial binned with ``np.histogram`` and
   smoothed on its own before averaging), with the ratio.
3. The evaluated fit as the job runs it (``lifrnn.jobs.fit_data.run_fit_data``: 5-fold
   cross-validation of the network and of the random baseline, then the final fit), float64
   against float32 in the same run, with the seconds of each stage, the R²s and the ratio.
4. The memory peak of the process (``ru_maxrss``).

Goals (issue 14): reading and preprocessing < 30 s; the 5-fold evaluated fit < 5 min on 2 CPU
cores.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifrnn.jobs.base import JobContext
from lifrnn.jobs.fit_data import run_fit_data
from lifrnn.nwb import read_nwb, write_nwb
from lifrnn.specs import FitDataSpec
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.fitting import random_initial_states
from lifrnn_core.recordings import (
    PreprocessConfig,
    Recording,
    condition_average,
    gaussian_smooth,
    preprocess,
    soft_normalise,
)
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters
from lifrnn_core.synthetic_recordings import synthesize_recording

logger = logging.getLogger("bench.fit_data")


def make_file(folder: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """A synthetic NWB file of the asked size and its generating network file."""
    params = SOCParameters.for_method("kao2021", n=args.n)
    W_np = build_soc(params, seed=0).weights
    W = torch.from_numpy(W_np)
    n_e = params.n_excitatory
    generator = torch.Generator().manual_seed(0)
    x_sp = spontaneous_state(args.n, generator)
    h = background_input(W, x_sp)
    x_star = random_initial_states(W, x_sp, args.conditions, generator)
    C = torch.randn(2, n_e, generator=generator, dtype=torch.float64) * 0.01
    trials = max(1, round(args.trials / args.conditions))
    synthetic = synthesize_recording(
        W,
        n_e,
        x_sp=x_sp,
        h=h,
        x_star=x_star,
        C=C,
        trials_per_condition=trials,
        neurons=args.units,
        seed=0,
    )
    path = folder / "maze.nwb"
    write_nwb(path, synthetic)
    from lifrnn.files import write_safetensors

    network = write_safetensors(
        folder / "network.safetensors",
        {"W": W, "x_sp": x_sp, "h": h},
        {"n_excitatory": str(n_e), "kind": "soc", "method": "kao2021"},
    )
    return path, network


def naive_preprocess(recording: Recording, config: PreprocessConfig) -> np.ndarray:
    """The straightforward way: every trial of every unit binned with ``np.histogram`` and
    smoothed on its own, then averaged per condition and soft-normalised."""
    events = recording.trials.events[config.align_event]
    keep = np.isfinite(events) & recording.trials.success
    start = config.window[0]
    edges = np.arange(config.n_time + 1) * config.dt + start
    counts = np.zeros((int(keep.sum()), config.n_time, recording.n_units))
    for row, event in enumerate(events[keep]):
        for unit, spikes in enumerate(recording.spike_times):
            counts[row, :, unit] = np.histogram(spikes, bins=edges + event)[0]
    rates = gaussian_smooth(counts / config.dt, config.sigma, config.dt)
    averages, _, _ = condition_average(rates, recording.trials.condition[keep])
    return soft_normalise(averages, config.soft_normalisation)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=182)
    parser.add_argument("--trials", type=int, default=2300)
    parser.add_argument("--conditions", type=int, default=108)
    parser.add_argument("--n", type=int, default=200, help="network size")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--max-iterations", type=int, default=100)
    parser.add_argument("--small", action="store_true", help="40 units, 240 trials, 12 conds")
    args = parser.parse_args()
    if args.small:
        args.units, args.trials, args.conditions, args.n = 40, 240, 12, 60
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(prefix="bench-fit-data-") as scratch:
        folder = Path(scratch)
        began = time.perf_counter()
        nwb, network = make_file(folder, args)
        size_mb = nwb.stat().st_size / 2**20
        print(
            f"synthetic file: {args.units} units, {args.trials} trials, {args.conditions} "
            f"conditions, {size_mb:.0f} MiB, written in {time.perf_counter() - began:.0f} s "
            "(not part of the measurement)"
        )
        spec = FitDataSpec.model_validate(
            {
                "network": "00000000-0000-0000-0000-000000000000",
                "data": "00000000-0000-0000-0000-000000000000",
                "folds": args.folds,
                "max_iterations": args.max_iterations,
            }
        )
        config = spec.preprocess_config()
        began = time.perf_counter()
        recording = read_nwb(nwb, spec.nwb_layout(), events=[config.align_event])
        read_s = time.perf_counter() - began
        began = time.perf_counter()
        averages = preprocess(recording, config)
        preprocess_s = time.perf_counter() - began
        began = time.perf_counter()
        naive = naive_preprocess(recording, config)
        naive_s = time.perf_counter() - began
        # The baseline smooths without padding: compare away from the window's edges (4 sd).
        edge = int(np.ceil(4 * config.sigma / config.dt))
        inner = slice(edge, averages.normalised.shape[1] - edge)
        difference = float(
            np.abs(naive[:, inner][..., averages.units] - averages.normalised[:, inner]).max()
        )
        print("\nreading and preprocessing (goal: < 30 s)")
        print(f"  read_nwb            {read_s:7.2f} s")
        print(
            f"  preprocess          {preprocess_s:7.2f} s   per-trial baseline {naive_s:7.2f} s"
            f"   ratio {naive_s / preprocess_s:5.1f}x   max difference inside: {difference:.2g}"
        )
        print(f"  read + preprocess   {read_s + preprocess_s:7.2f} s")
        rows = []
        for dtype in ("float64", "float32"):
            out = folder / dtype
            context = JobContext(
                out_dir=out,
                inputs={"network": network, "data": nwb},
                defer_figures=True,
            )
            began = time.perf_counter()
            result = run_fit_data(spec.model_copy(update={"dtype": dtype}), context)
            rows.append((dtype, time.perf_counter() - began, result))
        print(f"\n{args.folds}-fold evaluated fit, N = {args.n} (goal: < 300 s on 2 cores)")
        print(
            "  dtype    total s  preprocess  cv model  cv random  final   R² held-out  random"
            "   mean   iterations"
        )
        for dtype, total, result in rows:
            m, s = result.metrics, result.metrics["seconds"]
            print(
                f"  {dtype}  {total:8.1f}  {s['preprocess']:9.1f}"
                f"  {s['cross_validation_model']:8.1f}"
                f"  {s['cross_validation_random']:9.1f}  {s['final_fit']:5.1f}   "
                f"{m['r2_heldout']:10.3f}  {m['r2_heldout_random']:6.3f}  "
                f"{m['r2_heldout_mean_predictor']:6.3f}   {m['iterations']}"
            )
        print(f"  float32 / float64 time ratio: {rows[1][1] / rows[0][1]:.2f}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
        print(f"\nmemory peak (ru_maxrss): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
