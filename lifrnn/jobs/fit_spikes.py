"""Runner of ``kind: "fit_data"`` jobs on spike trains (``observation: "poisson"``): a network
fitted to single trials with a Poisson observation model, scored as the Neural Latents Benchmark
scores (NLB'21: Pei et al. 2021) beside its baselines, on the same test trials.

Stages, each saved as a checkpoint when done so that a job run again resumes after the last
finished one: every baseline (smoothing, GPFA, ridge, condition mean), the network's fit, the
random network's fit. Then every model is scored with
:func:`lifrnn_core.nlb_metrics.score_spike_trials`, the honest warnings are gathered and the
headline says where the network stands against the strongest baseline (docs/jobs.md, ``fit_data``).

This module reads the trials, runs the checkpointed stages and the runner; what it holds of each
model is :mod:`lifrnn.jobs.spike_models`, the scores, warnings and metrics are
:mod:`lifrnn.jobs.spike_scores`, the files it writes :mod:`lifrnn.jobs.spike_artifacts`.

May import: numpy, torch, h5py, :mod:`lifrnn`, :mod:`lifrnn_core`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import h5py
import numpy as np
import torch

from lifrnn.figure_recipes import FigureRecipe
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.spike_artifacts import _write_artifacts
from lifrnn.jobs.spike_models import ModelPrediction, _Network
from lifrnn.jobs.spike_scores import _metrics, _scores, headline
from lifrnn.networks import load_network
from lifrnn.results import JobResult
from lifrnn.specs.fit_data import FitDataSpec
from lifrnn_core import baselines as baseline_models
from lifrnn_core.data_fitting import random_like
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.nlb_metrics import NLBScores
from lifrnn_core.recordings import condition_average, gaussian_smooth
from lifrnn_core.spike_fitting import SpikeFit, SpikeFitConfig, fit_spikes
from lifrnn_core.spike_trials import SpikeTrials, SpikeTrialsError, spike_trials

__all__ = [
    "NLB_DATASETS",
    "ModelPrediction",
    "headline",
    "nlb_dataset_name",
    "run_fit_spikes",
]

logger = logging.getLogger(__name__)

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
NLB_DATASETS = (
    "mc_maze_large",
    "mc_maze_medium",
    "mc_maze_small",
    "mc_maze",
    "mc_rtt",
    "area2_bump",
    "dmfc_rsg",
)
"""NLB'21's dataset names, longest first: the ``nlb_predictions.h5`` group is the first of them
that the NWB file's ``identifier`` contains, else ``mc_maze``."""
HELDIN_KERNEL_SD = 0.05
"""Seconds: smoothing of held-in spikes that stands for a baseline's held-in rates when it has
no kernel of its own (NLB's smoothing baseline's held-in rates are its smoothed spikes)."""
_SHARES = {"read": 0.05, "baselines": 0.35, "network": 0.7, "random_network": 0.92}
"""Progress at the end of each stage."""


# --- reading -------------------------------------------------------------------------------------


def nlb_dataset_name(identifier: str | None, bin_width: float) -> str:
    """The NLB dataset name of a recording: the first of :data:`NLB_DATASETS` in its NWB
    ``identifier`` (case-insensitive), else ``mc_maze``; ``_20`` etc. appended for bins other
    than 5 ms, as NLB names its resampled datasets."""
    text = (identifier or "").lower()
    name = next((known for known in NLB_DATASETS if known in text), "mc_maze")
    milliseconds = round(bin_width * 1e3)
    return name if milliseconds == 5 else f"{name}_{milliseconds}"


def _identifier(path: Path) -> str | None:
    """The NWB file's ``identifier`` (read with h5py; None when absent or unreadable)."""
    try:
        with h5py.File(path, "r") as handle:
            value = handle.get("identifier")
            if not isinstance(value, h5py.Dataset):
                return None
            raw = value[()]
    except OSError:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _read_trials(spec: FitDataSpec, path: Path) -> tuple[SpikeTrials, int]:
    """The recording cut into scored single trials, and its number of units."""
    from lifrnn.nwb import read_nwb

    recording = read_nwb(path, spec.nwb_layout(), events=[spec.recording.align_event])
    try:
        return spike_trials(recording, spec.spike_trials_config()), recording.n_units
    except SpikeTrialsError as error:
        raise InvalidNetworkError(f"data: {error}") from None


# --- checkpointed stages -------------------------------------------------------------------------


def _checkpointed(
    context: JobContext, name: str, compute: Callable[[], ModelPrediction | None]
) -> ModelPrediction | None:
    """``compute()``, or its result saved by an earlier run of the job; a None (a model that
    could not be fitted, said in the job's notes) is saved too."""
    if context.checkpoints is not None:
        found = context.checkpoints.load(name)
        if found is not None:
            tensors, _, metadata = found
            context.report(0.0, f"{name} resumed from its checkpoint", milestone=True)
            return None if metadata.get("missing") else ModelPrediction.of(tensors, metadata)
    result = compute()
    if result is None:
        context.save_checkpoint(name, {"none": np.zeros(1)}, 1, {"missing": "1"}, force=True)
    else:
        info = json.dumps(result.info, sort_keys=True)
        context.save_checkpoint(name, result.tensors(), 1, {"info": info}, force=True)
    return result


def _smoothed_heldin(trials: SpikeTrials, width: float) -> np.ndarray:
    return gaussian_smooth(trials.heldin.astype(np.float64), width, trials.bin_width, axis=1)


def _baseline(spec: FitDataSpec, trials: SpikeTrials, name: str) -> ModelPrediction:
    """One of :mod:`lifrnn_core.baselines`, with held-in rates as NLB's smoothing has them."""
    if name == "smoothing":
        found = baseline_models.smoothing_baseline(trials, seed=spec.seed)
    elif name == "gpfa":
        found = baseline_models.gpfa_baseline(
            trials,
            latent_dims=spec.spikes.gpfa_latent_dims,
            em_max_iters=spec.spikes.gpfa_em_iterations,
            seed=spec.seed,
        )
    elif name == "ridge":
        found = baseline_models.ridge_baseline(trials)
    else:
        found = baseline_models.condition_mean_baseline(trials)
    width = found.hyperparameters.get("kernel_width", HELDIN_KERNEL_SD)
    if name == "condition_mean":
        heldin = _condition_mean_heldin(trials, width)
    else:
        heldin = _smoothed_heldin(trials, width or HELDIN_KERNEL_SD)
    info = {"hyperparameters": found.hyperparameters, "seconds": round(found.fit_seconds, 3)}
    return ModelPrediction(heldin, found.rates, found.forward_rates, info)


def _condition_mean_heldin(trials: SpikeTrials, width: float) -> np.ndarray:
    """(trials, time, n_heldin) each trial's condition mean of the train trials' held-in counts."""
    train = trials.mask("train")
    means, labels, _ = condition_average(
        trials.heldin[train].astype(np.float64), trials.condition[train]
    )
    means = gaussian_smooth(means, width, trials.bin_width, axis=1) if width > 0 else means
    overall = trials.heldin[train].astype(np.float64).mean(axis=0)
    index = {label: k for k, label in enumerate(labels)}
    return np.stack([means[index[c]] if c in index else overall for c in trials.condition])


def _fit_config(spec: FitDataSpec) -> SpikeFitConfig:
    spikes = spec.spikes
    return SpikeFitConfig(
        tau=spec.tau,
        integration_dt=spec.integration_dt,
        gain=spec.gain,
        state_radius=spec.state_radius,
        n_modes=spec.n_modes,
        readout_decays=tuple(spikes.readout_decays),
        state_priors=tuple(spikes.state_priors),
        max_iterations=spec.max_iterations,
        relative_tolerance=spec.relative_tolerance,
        patience=spikes.patience,
        single_trial_rounds=spikes.single_trial_rounds,
    )


def _network_prediction(fit: SpikeFit) -> ModelPrediction:
    def numpy(x: torch.Tensor) -> np.ndarray:
        return x.detach().cpu().double().numpy()

    points = fit.grid
    info = {
        "converged": fit.converged,
        "stop_reason": fit.fit.stop_reason,
        "iterations": int(sum(point.iterations for point in points)),
        "readout_decay": fit.readout_decay,
        "state_prior": fit.state_prior,
        "prior_width": fit.prior_width,
        "inference_converged": fit.inference_converged,
        "trial_variance_explained": fit.trial_variance_explained,
        "trial_variance_explainable": fit.trial_variance_explainable,
        "conditions": [str(c) for c in fit.conditions],
        "cost": [value for point in points for value in point.history],
    }
    extra = {
        "x_star": numpy(fit.x_star),
        "C": numpy(fit.readout.C),
        "b": numpy(fit.readout.b),
        "initial_states": numpy(fit.initial_states),
    }
    info["tensors"] = sorted(extra)
    return ModelPrediction(
        fit.heldin_rates.detach().cpu().numpy(),  # float32 in ModelPrediction
        fit.heldout_rates.detach().cpu().numpy(),
        fit.forward_rates.detach().cpu().numpy(),
        info,
        extra,
    )


def _load_network(spec: FitDataSpec, context: JobContext, dtype: torch.dtype) -> _Network:
    saved = load_network(context.input_path("network"))
    device = torch.device(spec.device)
    W = torch.from_numpy(saved.W).to(device, dtype)
    if "x_sp" in saved.tensors:
        x_sp = torch.from_numpy(saved.tensors["x_sp"]).to(device, dtype)
    else:
        generator = torch.Generator().manual_seed(spec.seed)
        x_sp = spontaneous_state(W.shape[0], generator).to(device, dtype)
    return _Network(W, background_input(W, x_sp, spec.gain), x_sp, saved.n_excitatory, saved)


def _fit_network(
    spec: FitDataSpec,
    context: JobContext,
    trials: SpikeTrials,
    network: _Network,
    W: torch.Tensor,
    name: str,
    progress: tuple[float, float],
) -> ModelPrediction | None:
    """The Poisson fit of ``W`` (the network, or the random one) with single-trial inference;
    a checkpoint holds its predictions and parameters."""
    checkpoint = f"spikes_fit_{name}"
    if context.checkpoints is not None:
        found = context.checkpoints.load(checkpoint)
        if found is not None:
            tensors, _, metadata = found
            context.report(progress[1], f"{name} fit resumed from its checkpoint", milestone=True)
            if metadata.get("missing"):
                return None
            prediction = ModelPrediction.of(tensors, metadata)
            prediction.extra = {k: tensors[k] for k in prediction.info.get("tensors", [])}
            return prediction
    low, high = progress

    def on_iteration(iteration: int, cost: float) -> None:
        if name == "network":
            context.record("cost", iteration, cost)
        budget = (
            spec.max_iterations * len(spec.spikes.readout_decays) * len(spec.spikes.state_priors)
        )
        done = min(iteration / max(budget, 1), 0.95)
        context.report(low + (high - low) * done, f"{name} fit, iteration {iteration}: {cost:.4g}")

    h = background_input(W, network.x_sp, spec.gain)
    try:
        fit = fit_spikes(
            W,
            h,
            network.x_sp,
            trials,
            n_excitatory=network.n_excitatory,
            config=_fit_config(spec),
            generator=torch.Generator().manual_seed(spec.seed),
            callback=on_iteration,
        )
    except DivergenceError as error:
        if name == "network":
            raise
        logger.warning("the random network's fit diverged: %s", error)
        context.save_checkpoint(checkpoint, {"none": np.zeros(1)}, 1, {"missing": "1"}, force=True)
        return None
    prediction = _network_prediction(fit)
    extra = prediction.extra
    info = json.dumps(prediction.info, sort_keys=True)
    context.save_checkpoint(
        checkpoint, {**prediction.tensors(), **extra}, 1, {"info": info}, force=True
    )
    return prediction


# --- the runner ----------------------------------------------------------------------------------


def _return_freed_memory() -> None:
    """Give the memory freed by a finished model back to the system (glibc's ``malloc_trim``;
    a no-op elsewhere). A fit frees hundreds of MB in small blocks (the autograd graph of every
    Heun step) that glibc keeps; the next stage's large arrays then come on top of them."""
    gc.collect()
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, ...): no trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_fit_spikes(spec: FitDataSpec, context: JobContext) -> JobResult:
    """Cut the NWB recording into scored single trials, fit the baselines, the network and a
    random network alike, score them all on the same test trials; write ``network.safetensors``,
    ``nlb_predictions.h5`` and ``spike_fit.safetensors``."""
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise InvalidNetworkError("device 'cuda' requested but torch sees no CUDA device")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    context.report(0.0, "reading and binning the spike trains", milestone=True)
    path = context.input_path("data")
    trials, n_units = _read_trials(spec, path)
    network = _load_network(spec, context, _DTYPES[spec.dtype])
    seconds["read"] = time.perf_counter() - start
    chosen = spec.spikes.baselines if spec.baselines else []
    fixed = [name for name in chosen if name != "random_network"]
    models: dict[str, ModelPrediction] = {}
    scores: dict[str, NLBScores] = {}
    notes: list[str] = []
    test = trials.mask("test")

    def keep(name: str, prediction: ModelPrediction) -> None:
        """Score a model as soon as it is made; of any but the network keep the test trials
        only (memory: at MC_Maze's size every model's rates of every trial are ~0.3 GB)."""
        _return_freed_memory()  # what the model's fit freed, before the scores' arrays
        scores[name] = _scores(trials, prediction)
        models[name] = prediction if name == "network" else prediction.test_rows(test)
        _return_freed_memory()

    for index, name in enumerate(fixed):
        begun = time.perf_counter()
        share = _SHARES["read"] + (_SHARES["baselines"] - _SHARES["read"]) * index / len(fixed)
        context.report(share, f"baseline {name}")
        found = _checkpointed(
            context, f"spikes_baseline_{name}", partial(_baseline, spec, trials, name)
        )
        if found is not None:
            keep(name, found)
        seconds[f"baseline_{name}"] = time.perf_counter() - begun
    begun = time.perf_counter()
    context.report(_SHARES["baselines"], "fitting the network to the spike trains", milestone=True)
    fitted = _fit_network(
        spec,
        context,
        trials,
        network,
        network.W,
        "network",
        (_SHARES["baselines"], _SHARES["network"]),
    )
    assert fitted is not None
    keep("network", fitted)
    seconds["network"] = time.perf_counter() - begun
    if "random_network" in chosen:
        begun = time.perf_counter()
        W_random = random_like(
            network.W, network.n_excitatory, torch.Generator().manual_seed(spec.seed + 1)
        )
        context.report(_SHARES["network"], "fitting a random network of the same size alike")
        random_fit = _fit_network(
            spec,
            context,
            trials,
            network,
            W_random,
            "random_network",
            (_SHARES["network"], _SHARES["random_network"]),
        )
        if random_fit is None:
            notes.append("random_network left out: its fit diverged")
        else:
            keep("random_network", random_fit)
        seconds["random_network"] = time.perf_counter() - begun
    context.report(_SHARES["random_network"], "scoring every model on the test trials")
    order = [*[name for name in fixed if name in models], "network", "random_network"]
    metrics = _metrics(
        spec,
        trials,
        network,
        n_units,
        models,
        {name: scores[name] for name in order if name in scores},
        notes,
    )
    dataset = nlb_dataset_name(_identifier(path), trials.bin_width)
    metrics["nlb"]["dataset"] = dataset
    _write_artifacts(spec, context, trials, network, models, dataset)
    context.save_figure(
        "nlb.png",
        FigureRecipe.of("fit_data_nlb", metrics["nlb"], warnings=metrics["warnings"]),
    )
    seconds["total"] = time.perf_counter() - start
    metrics["seconds"] = {key: round(value, 3) for key, value in seconds.items()}
    context.report(1.0, metrics["nlb"]["headline"], milestone=True)
    return JobResult(
        kind="fit_data", status="succeeded", metrics=metrics, artifacts=dict(context.artifacts)
    )
