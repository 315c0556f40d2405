"""A spike-train fit_data evaluation at MC_Maze's size, stage by stage (issue 28.9).

Run on demand: ``python bench/nlb.py`` (defaults: ``synth-nwb --spikes --n 200 --conditions 27
--trials 85 --neurons 182``, i.e. 2,295 trials of 182 neurons in 5 ms bins, as MC_Maze has;
float32; 2 CPU threads). ``--small`` runs a quick version; ``--file maze.nwb`` reuses a file
written by ``lifrnn synth-nwb --spikes`` (its ``.truth.safetensors`` and ``.trials.safetensors``
beside it). ``--job`` runs the whole job instead, as a user would (``lifrnn run`` of a
``fit_data`` spec, float32, every other setting the default), in a child process that reports
its own memory peak: the issue's measure; the stages below say where its time goes.

1. The recording is written once by ``lifrnn synth-nwb --spikes`` (timed, not part of the job).
2. Each stage of the evaluated job, through the core functions it calls: read the NWB file
   (``lifrnn.nwb.read_nwb``) and bin it (``lifrnn_core.spike_trials.spike_trials``); each
   baseline (spike smoothing, GPFA with its latent dimension chosen on val trials, ridge,
   condition mean; ``lifrnn_core.baselines``); the Poisson fit of the generating network
   (``lifrnn_core.spike_fitting.fit_spikes``: condition fit over the regularisation grid, prior
   width, readout refit, single-trial inference of every trial) and of a random network of the
   same size fitted alike; single-trial inference alone (re-run, to show its share); the four
   NLB scores of every model (``lifrnn_core.nlb_metrics.score_spike_trials``).
3. Each stage's seconds, share and the process's memory peak after it (``ru_maxrss``), the
   total against the goals (ratios), and the co-bps of every model beside that of the true
   single-trial rates (from ``OUT.trials.safetensors``): issue 28.7's bar, at MC_Maze's size.

Goals: the whole evaluated job < 10 min on 2 CPU cores in float32, peak memory < 3 GiB.
``--device cuda`` runs the network fits on a GPU (the baselines stay on the CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lifrnn.files import read_safetensors
from lifrnn.nwb import NWBLayout, read_nwb
from lifrnn_core.baselines import (
    condition_mean_baseline,
    gpfa_baseline,
    ridge_baseline,
    smoothing_baseline,
)
from lifrnn_core.data_fitting import random_like
from lifrnn_core.dynamics import background_input
from lifrnn_core.nlb_metrics import co_bps, score_spike_trials
from lifrnn_core.recordings import gaussian_smooth
from lifrnn_core.spike_fitting import SpikeFitConfig, fit_spikes, infer_initial_states
from lifrnn_core.spike_trials import SpikeTrials, SpikeTrialsConfig, spike_trials

logger = logging.getLogger("bench.nlb")

GOAL_SECONDS = 600.0
GOAL_BYTES = 3 * 2**30
MC_MAZE = {"n": 200, "conditions": 27, "trials": 85, "neurons": 182}
SMALL = {"n": 100, "conditions": 8, "trials": 20, "neurons": 60}

T = TypeVar("T")


class Stages:
    """Seconds of each named stage, in the order run, and the process's memory peak after it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, int] = {}

    def time(self, name: str, work: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = work()
        self.seconds[name] = time.perf_counter() - start
        self.peaks[name] = peak_bytes()
        logger.info(
            "%-40s %8.1f s, memory peak so far %.2f GiB",
            name,
            self.seconds[name],
            self.peaks[name] / 2**30,
        )
        return result


def write_file(folder: Path, sizes: dict[str, int]) -> Path:
    """``lifrnn synth-nwb --spikes`` of the given sizes into ``folder``; the NWB file's path."""
    path = folder / "maze.nwb"
    command = [sys.executable, "-m", "lifrnn", "synth-nwb", "--spikes", "--out", str(path)]
    for name, value in sizes.items():
        command += [f"--{name}", str(value)]
    subprocess.run(command, check=True)
    return path


def peak_bytes() -> int:
    """The process's resident-memory peak so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fit(
    W: torch.Tensor,
    h: torch.Tensor,
    x_sp: torch.Tensor,
    trials: SpikeTrials,
    n_excitatory: int,
    config: SpikeFitConfig,
    seed: int,
) -> Any:
    return fit_spikes(
        W,
        h,
        x_sp,
        trials,
        n_excitatory=n_excitatory,
        config=config,
        generator=torch.Generator(device=W.device).manual_seed(seed),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a quick, small version")
    parser.add_argument("--file", type=Path, help="a synth-nwb --spikes file to reuse")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--job",
        action="store_true",
        help="instead of the stages, run the whole fit_data job as a user would (`lifrnn run`, "
        "float32, defaults otherwise) and report its seconds and memory peak",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lifrnn_core", "lifrnn", "elephant", "hdmf", "pynwb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    dtype, device = torch.float32, torch.device(args.device)

    with tempfile.TemporaryDirectory(prefix="bench-nlb-") as folder:
        stages = Stages()
        path = args.file
        if path is None:
            sizes = SMALL if args.small else MC_MAZE
            path = stages.time(
                "synth-nwb --spikes (not in the job)", lambda: write_file(Path(folder), sizes)
            )
        truth = path.with_name(path.stem + ".truth.safetensors")
        if args.job:
            whole_job(path, truth, Path(folder), args)
            return
        truth_tensors, truth_meta = read_safetensors(truth)
        with threadpool_limits(args.threads):
            recording = stages.time(
                "read NWB", lambda: read_nwb(path, NWBLayout(), ["move_onset_time"])
            )
            trials = stages.time(
                "bin into single trials", partial(spike_trials, recording, SpikeTrialsConfig())
            )
            del recording  # as the job does: only the binned trials are kept
            logger.info(
                "%d trials (%s), %d bins + %d forward, %d held-in + %d held-out neurons",
                trials.n_trials,
                {s: int(trials.mask(s).sum()) for s in ("train", "val", "test")},
                trials.heldin.shape[1],
                trials.heldin_forward.shape[1],
                trials.heldin.shape[2],
                trials.heldout.shape[2],
            )
            predictions: dict[str, tuple[np.ndarray | None, np.ndarray, np.ndarray | None]] = {}
            baselines = {
                "smoothing": lambda: smoothing_baseline(trials, seed=0),
                "gpfa": lambda: gpfa_baseline(trials, seed=0),
                "ridge": lambda: ridge_baseline(trials),
                "condition_mean": lambda: condition_mean_baseline(trials),
            }
            for name, run in baselines.items():
                baseline = stages.time(f"baseline: {name}", run)
                predictions[name] = (None, baseline.rates, baseline.forward_rates)

            n_excitatory = int(truth_meta["n_excitatory"])
            config = SpikeFitConfig(tau=float(truth_meta.get("tau", 0.15)))
            W = torch.as_tensor(truth_tensors["W"]).to(device=device, dtype=dtype)
            x_sp = torch.as_tensor(truth_tensors["x_sp"]).to(device=device, dtype=dtype)
            h = torch.as_tensor(truth_tensors["h"]).to(device=device, dtype=dtype)
            network = stages.time(
                "network fit (incl. single trials)",
                lambda: fit(W, h, x_sp, trials, n_excitatory, config, 0),
            )
            generator = torch.Generator().manual_seed(1)
            W_random = random_like(W.cpu().double(), n_excitatory, generator).to(W)
            h_random = background_input(W_random, x_sp)
            random = stages.time(
                "random network fit (incl. single trials)",
                lambda: fit(W_random, h_random, x_sp, trials, n_excitatory, config, 0),
            )
            index = torch.as_tensor(network.trial_condition, device=device).long()
            stages.time(
                "single-trial inference alone (re-run)",
                lambda: infer_initial_states(
                    W,
                    h,
                    network.x_star[index],
                    torch.as_tensor(trials.heldin, device=device),
                    network.readout.rows(slice(0, network.n_heldin)),
                    n_excitatory=n_excitatory,
                    prior_width=network.prior_width,
                    bin_width=trials.bin_width,
                    config=config,
                ),
            )
            for name, fitted in (("network", network), ("random_network", random)):
                forward = fitted.forward_rates.detach().cpu().double().numpy()
                predictions[name] = (
                    fitted.heldin_rates.detach().cpu().double().numpy(),
                    fitted.heldout_rates.detach().cpu().double().numpy(),
                    forward,
                )

            smoothed_heldin = gaussian_smooth(trials.heldin, 0.05, trials.bin_width)

            def score_all() -> dict[str, Any]:
                scores = {}
                n_heldin = trials.heldin.shape[2]
                for name, (heldin, heldout, forward) in predictions.items():
                    # a baseline predicts held-out neurons only: NLB's velocity decoder then
                    # reads the held-in neurons' smoothed counts (as nlb-tools' baselines do)
                    heldin_rates = heldin if heldin is not None else smoothed_heldin
                    scores[name] = score_spike_trials(
                        trials,
                        heldin_rates,
                        heldout,
                        None if forward is None else forward[..., :n_heldin],
                        None if forward is None else forward[..., n_heldin:],
                    )
                return scores

            scores = stages.time("NLB scores, every model", score_all)
            truth_co_bps = true_rates_co_bps(path, trials)

    report(stages, scores, truth_co_bps, args)


JOB_RUNNER = """
import resource, runpy, sys
sys.argv = ["lifrnn", *sys.argv[1:]]
try:
    runpy.run_module("lifrnn", run_name="__main__")
finally:
    sys.stderr.write(f"\\npeak-kib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n")
"""
"""``lifrnn`` in a child process that reports its own memory peak (KiB) as it exits."""


def whole_job(path: Path, truth: Path, folder: Path, args: argparse.Namespace) -> None:
    """The issue's measure: ``lifrnn run`` of a fit_data spec on the file (float32, every
    default: the grids, the four baselines and the random network), its wall-clock seconds,
    the seconds the job reports per stage, and the process's memory peak."""
    spec = {"kind": "fit_data", "network": str(truth), "data": str(path), "dtype": "float32"}
    if args.device != "cpu":
        spec["device"] = args.device
    spec_file = folder / "job.json"
    spec_file.write_text(json.dumps(spec))
    env = {
        **os.environ,
        "LIFRNN_HOME": str(folder / "home"),
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "OPENBLAS_NUM_THREADS": str(args.threads),
    }
    command = [sys.executable, "-c", JOB_RUNNER, "run", str(spec_file), "--out"]
    command += [str(folder / "out"), "--no-store", "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the job failed (exit {done.returncode})")
    peak = int(done.stderr.rsplit("peak-kib ", 1)[1].split()[0]) * 1024
    metrics = json.loads(done.stdout.strip().splitlines()[-1])["metrics"]
    sys.stdout.write("\nstage (the job's own seconds)              seconds\n")
    for name, seconds in metrics["seconds"].items():
        sys.stdout.write(f"{name:<42}{seconds:9.1f}\n")
    sys.stdout.write(
        f"\nwhole job, `lifrnn run` wall clock: {wall:.1f} s = {wall / GOAL_SECONDS:.2f} x the "
        f"10 min goal ({args.threads} threads, float32, {args.device})\n"
        f"memory peak: {peak / 2**30:.2f} GiB = {peak / GOAL_BYTES:.2f} x the 3 GiB goal\n"
        "co-bps (test trials): "
        + ", ".join(f"{n} {s['co_bps']:.3f}" for n, s in metrics["nlb"]["scores"].items())
        + "\n"
    )


def true_rates_co_bps(path: Path, trials: SpikeTrials) -> float | None:
    """co-bps of the true single-trial rates on the test trials (issue 28.7's reference), from
    ``synth-nwb --spikes``'s ``OUT.trials.safetensors`` (None when the file has none): its rates
    are binned as the counts are, one row per trial of the file's trial table."""
    trial_file = path.with_name(path.stem + ".trials.safetensors")
    if not trial_file.exists():
        return None
    tensors, _ = read_safetensors(trial_file)
    n_time = trials.heldout.shape[1]
    rates = np.asarray(tensors["trial_rates"])[trials.trial_index][:, :n_time]
    test = trials.mask("test")
    expected = rates[test][..., trials.heldout_units].astype(np.float64) * trials.bin_width
    return co_bps(expected, trials.heldout[test])


def report(
    stages: Stages, scores: dict[str, Any], truth: float | None, args: argparse.Namespace
) -> None:
    """Each stage's seconds, share of the job and memory peak so far; the goals' ratios; co-bps.

    The peak is the process's (``ru_maxrss``) after the stage: the first stage whose peak
    jumps is the one that set it."""
    seconds = stages.seconds
    job = {name: s for name, s in seconds.items() if "not in the job" not in name}
    job.pop("single-trial inference alone (re-run)", None)
    total = sum(job.values())
    network = job["network fit (incl. single trials)"]
    baselines = sum(v for k, v in job.items() if k.startswith("baseline"))
    sys.stdout.write(f"\n{'stage':<42}{'seconds':>9}{'share':>8}{'peak GiB':>10}\n")
    for name, stage in seconds.items():
        share = f"{stage / total:7.1%}" if name in job else "      –"
        peak_so_far = stages.peaks[name] / 2**30
        sys.stdout.write(f"{name:<42}{stage:9.1f} {share}{peak_so_far:10.2f}\n")
    peak = peak_bytes()
    sys.stdout.write(
        f"\nwhole evaluated job: {total:.1f} s = {total / GOAL_SECONDS:.2f} x the 10 min goal "
        f"({args.threads} threads, float32, {args.device})\n"
        f"memory peak: {peak / 2**30:.2f} GiB = {peak / GOAL_BYTES:.2f} x the 3 GiB goal\n"
        f"ratios: network fit / GPFA {network / job['baseline: gpfa']:.2f}; network fit / all "
        f"baselines {network / baselines:.2f}\n"
    )
    sys.stdout.write("\nco-bps (test trials): ")
    sys.stdout.write(", ".join(f"{name} {s.co_bps:.3f}" for name, s in scores.items()) + "\n")
    network_co_bps = scores["network"].co_bps
    strongest = max((s.co_bps, name) for name, s in scores.items() if name != "network")
    sys.stdout.write(
        f"issue 28.7 at this size: the generating network {network_co_bps:.3f} vs the strongest "
        f"other model ({strongest[1]}) {strongest[0]:.3f}"
    )
    if truth is not None:
        sys.stdout.write(
            f"; the true rates {truth:.3f} (network - truth {network_co_bps - truth:+.3f}, "
            "the bar is 0.02)"
        )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
