"""A spike-train fit_data evaluation at MC_Maze's size, stage by stage (issue 28.9).

Run on demand: ``python bench/nlb.py`` (defaults: ``synth-nwb --spikes --n 200 --conditions 27
--trials 85 --neurons 182``, i.e. 2,295 trials of 182 neurons in 5 ms bins, as MC_Maze has;
float32; 2 CPU threads). ``--small`` runs a quick version; ``--file maze.nwb`` reuses a file
written by ``lifrnn synth-nwb --spikes`` (its ``.truth.safetensors`` and ``.trials.safetensors``
beside it).

1. The recording is written once by ``lifrnn synth-nwb --spikes`` (timed, not part of the job).
2. Each stage of the evaluated job, through the core functions it calls: read the NWB file
   (``lifrnn.nwb.read_nwb``) and bin it (``lifrnn_core.spike_trials.spike_trials``); each
   baseline (spike smoothing, GPFA with its latent dimension chosen on val trials, ridge,
   condition mean; ``lifrnn_core.baselines``); the Poisson fit of the generating network
   (``lifrnn_core.spike_fitting.fit_spikes``: condition fit over the regularisation grid, prior
   width, readout refit, single-trial inference of every trial) and of a random network of the
   same size fitted alike; single-trial inference alone (re-run, to show its share); the four
   NLB scores of every model (``lifrnn_core.nlb_metrics.score_spike_trials``).
3. Each stage's seconds and share, the total against the goal (ratio), the co-bps of every
   model (a sanity check, not the measure), and the process's memory peak (``ru_maxrss``).

Goals: the whole evaluated job < 10 min on 2 CPU cores in float32, peak memory < 3 GiB.
``--device cuda`` runs the network fits on a GPU (the baselines stay on the CPU).
"""

from __future__ import annotations

import argparse
import logging
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
from lifrnn_core.nlb_metrics import score_spike_trials
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
    """Seconds of each named stage, in the order run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str, work: Callable[[], T]) -> T:
        start = time.perf_counter()
        result = work()
        self.seconds[name] = time.perf_counter() - start
        logger.info("%-40s %8.1f s", name, self.seconds[name])
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
        truth_tensors, truth_meta = read_safetensors(truth)
        with threadpool_limits(args.threads):
            recording = stages.time(
                "read NWB", lambda: read_nwb(path, NWBLayout(), ["move_onset_time"])
            )
            trials = stages.time(
                "bin into single trials", lambda: spike_trials(recording, SpikeTrialsConfig())
            )
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

    report(stages.seconds, scores, args)


def report(seconds: dict[str, float], scores: dict[str, Any], args: argparse.Namespace) -> None:
    """Each stage's seconds and share of the job, the goals' ratios, the co-bps."""
    job = {name: s for name, s in seconds.items() if "not in the job" not in name}
    job.pop("single-trial inference alone (re-run)", None)
    total = sum(job.values())
    network = job["network fit (incl. single trials)"]
    baselines = sum(v for k, v in job.items() if k.startswith("baseline"))
    sys.stdout.write(f"\n{'stage':<42}{'seconds':>9}{'share':>8}\n")
    for name, stage in seconds.items():
        share = f"{stage / total:7.1%}" if name in job else "      –"
        sys.stdout.write(f"{name:<42}{stage:9.1f} {share}\n")
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


if __name__ == "__main__":
    main()
