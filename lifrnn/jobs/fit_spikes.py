"""Runner of ``kind: "fit_data"`` jobs on spike trains (``observation: "poisson"``): a network
fitted to single trials with a Poisson observation model, scored as the Neural Latents Benchmark
scores (NLB'21: Pei et al. 2021) beside its baselines, on the same test trials.

Stages, each saved as a checkpoint when done so that a job run again resumes after the last
finished one: every baseline (smoothing, GPFA, ridge, condition mean), the network's fit, the
random network's fit. Then every model is scored with
:func:`lifrnn_core.nlb_metrics.score_spike_trials`, the honest warnings are gathered and the
headline says where the network stands against the strongest baseline (docs/jobs.md, ``fit_data``).

May import: numpy, torch, h5py, :mod:`lifrnn`, :mod:`lifrnn_core`.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from lifrnn import __version__
from lifrnn.figure_recipes import FigureRecipe
from lifrnn.files import write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.numerics import euler_step_metrics
from lifrnn.networks import SavedNetwork, load_network
from lifrnn.results import JobResult
from lifrnn.specs import spec_sha256
from lifrnn.specs.fit_data import FitDataSpec
from lifrnn_core import baselines as baseline_models
from lifrnn_core.data_fitting import random_like
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.errors import DivergenceError, InvalidNetworkError
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.jpca import JPCAResult, jpca
from lifrnn_core.nlb_metrics import (
    NLBScores,
    condition_psths,
    psth_r2,
    psth_reliability,
    score_spike_trials,
    trial_psths,
)
from lifrnn_core.recordings import condition_average, gaussian_smooth
from lifrnn_core.spike_fitting import SpikeFit, SpikeFitConfig, fit_spikes
from lifrnn_core.spike_trials import SpikeTrials, SpikeTrialsError, spike_trials
from lifrnn_core.synthetic_recordings import generator_problems

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
BOOTSTRAP_SAMPLES = 1000
"""Resamples of the test trials behind the headline's interval."""
JPCA_SOFT_NORMALISATION = 5.0
"""Spikes/s added to each neuron's PSTH range before jPCA divides by it (as the Gaussian path)."""
_SHARES = {"read": 0.05, "baselines": 0.35, "network": 0.7, "random_network": 0.92}
"""Progress at the end of each stage."""


@dataclass
class ModelPrediction:
    """One model's predicted rates for every trial, spikes per bin, kept in float32 (at
    MC_Maze's size a model's rates are ~0.6 GB in float64, and a job holds six models; the
    scores are computed in float64 from these values).

    Attributes:
        heldin: (trials, time, n_heldin) held-in neurons in the window.
        heldout: (trials, time, n_heldout) held-out neurons in the window (co-smoothing).
        forward: (trials, n_forward, n_heldin + n_heldout) after the window, or None.
        info: what the model chose and how it went (JSON-ready).
        extra: a fitted network's parameters (``x_star``, ``C``, ``b``, ``initial_states``).
        test_only: the rows are the test trials' only: what the job keeps of a model other
            than the network once it is scored (its artifacts and its margin read no more).
    """

    heldin: np.ndarray
    heldout: np.ndarray
    forward: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    test_only: bool = False

    def __post_init__(self) -> None:
        self.heldin = np.asarray(self.heldin, dtype=np.float32)
        self.heldout = np.asarray(self.heldout, dtype=np.float32)
        if self.forward is not None:
            self.forward = np.asarray(self.forward, dtype=np.float32)

    def test_rows(self, test: np.ndarray) -> ModelPrediction:
        """The prediction of the ``test`` trials (a (trials,) mask) only."""
        if self.test_only:
            return self
        forward = None if self.forward is None else self.forward[test]
        return ModelPrediction(
            self.heldin[test], self.heldout[test], forward, self.info, self.extra, test_only=True
        )

    def tensors(self) -> dict[str, np.ndarray]:
        found = {"heldin": self.heldin, "heldout": self.heldout}
        if self.forward is not None:
            found["forward"] = self.forward
        return found

    @classmethod
    def of(cls, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> ModelPrediction:
        return cls(
            tensors["heldin"],
            tensors["heldout"],
            tensors.get("forward"),
            json.loads(metadata.get("info", "{}")),
        )


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


@dataclass(frozen=True)
class _Network:
    W: torch.Tensor
    h: torch.Tensor
    x_sp: torch.Tensor
    n_excitatory: int
    saved: SavedNetwork


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


# --- scores, noise ceiling, headline -------------------------------------------------------------


def _return_freed_memory() -> None:
    """Give the memory freed by a finished model back to the system (glibc's ``malloc_trim``;
    a no-op elsewhere). A fit frees hundreds of MB in small blocks (the autograd graph of every
    Heun step) that glibc keeps; the next stage's large arrays then come on top of them."""
    gc.collect()
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl, ...): no trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _scores(trials: SpikeTrials, prediction: ModelPrediction) -> NLBScores:
    n_heldin = trials.heldin.shape[2]
    forward = prediction.forward
    return score_spike_trials(
        trials,
        prediction.heldin,
        prediction.heldout,
        None if forward is None else forward[..., :n_heldin],
        None if forward is None else forward[..., n_heldin:],
    )


def _noise_ceiling(
    spec: FitDataSpec, trials: SpikeTrials, network: ModelPrediction
) -> dict[str, Any]:
    """The network's in-sample (train) PSTH R² and co-bps beside the PSTHs' reliability."""
    train = trials.mask("train")
    counts = np.concatenate([trials.heldin[train], trials.heldout[train]], axis=-1)
    rates = np.concatenate([network.heldin[train], network.heldout[train]], axis=-1)
    conditions = trials.condition[train]
    reliability = psth_reliability(
        counts, conditions, trials.bin_width, np.random.default_rng([spec.seed, 28])
    )
    psths, labels = condition_psths(counts, conditions, trials.bin_width)
    in_sample = psth_r2(rates, conditions, psths, labels)
    from lifrnn_core.nlb_metrics import co_bps

    train_co_bps = co_bps(network.heldout[train], trials.heldout[train])
    return {
        "psth_reliability": reliability,
        "train_psth_r2": in_sample,
        "train_co_bps": train_co_bps,
        "above": bool(math.isfinite(reliability) and in_sample > reliability),
    }


def _trial_gains(rates: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(trials,) Poisson log-likelihood of each trial's counts (nats, without log y!)."""
    rates = np.where(rates == 0, 1e-9, np.asarray(rates, dtype=np.float64))
    return (counts * np.log(rates) - rates).sum(axis=(1, 2))


def _margin(
    trials: SpikeTrials, network: ModelPrediction, other: ModelPrediction, seed: int
) -> dict[str, Any]:
    """The network's co-bps minus another model's on the test trials, with a bootstrap over
    the test trials: the difference is the two log-likelihoods' difference over the spikes
    (the null model cancels), so each resample costs two sums."""
    test = trials.mask("test")
    counts = trials.heldout[test].astype(np.float64)
    difference = _trial_gains(network.test_rows(test).heldout, counts) - _trial_gains(
        other.test_rows(test).heldout, counts
    )
    spikes = counts.sum(axis=(1, 2))
    rng = np.random.default_rng([seed, 29])
    draws = rng.integers(0, len(spikes), size=(BOOTSTRAP_SAMPLES, len(spikes)))
    resampled = (
        difference[draws].sum(axis=1) / np.maximum(spikes[draws].sum(axis=1), 1) / math.log(2)
    )
    low, high = np.quantile(resampled, [0.025, 0.975])
    return {
        "difference": float(difference.sum() / max(spikes.sum(), 1) / math.log(2)),
        "standard_error": float(resampled.std(ddof=1)),
        "interval": [float(low), float(high)],
    }


def headline(
    network_co_bps: float,
    n_heldout: int,
    n_test: int,
    strongest: str | None,
    strongest_co_bps: float | None,
    finding: bool,
) -> str:
    """The job's headline: where the network stands against the strongest baseline."""
    start = (
        f"the network's co-bps {network_co_bps:.4f} on {n_heldout} held-out neurons of "
        f"{n_test} test trials"
    )
    if strongest is None or strongest_co_bps is None:
        return f"{start} has no baseline beside it: not a finding"
    side = "above" if network_co_bps > strongest_co_bps else "below"
    verdict = "a finding" if finding else "not a finding"
    return (
        f"{start} is {side} the strongest baseline ({strongest}, {strongest_co_bps:.4f}): {verdict}"
    )


# --- warnings ------------------------------------------------------------------------------------


def _provenance_problems(saved: SavedNetwork) -> list[str]:
    """What the network file's own metadata says went wrong when it was made."""
    metadata = saved.metadata
    problems = []
    if str(metadata.get("converged", "")).lower() == "false":
        problems.append("the network file says its fit did not converge")
    if "poor" in metadata:
        try:
            poor = saved.meta("poor")
        except ValueError:
            poor = metadata["poor"]
        if isinstance(poor, list):
            problems += [str(problem) for problem in poor]
    target = None
    if "target_abscissa" in metadata:
        try:
            target = float(metadata["target_abscissa"])
        except ValueError:
            target = None
    elif metadata.get("method") in ("kao2021", "hennequin2014") and metadata.get("kind") == "soc":
        from lifrnn_core.soc_parameters import SOCParameters

        target = SOCParameters.for_method(metadata["method"], n=saved.W.shape[0]).target_abscissa  # type: ignore[arg-type]
    if target is not None:
        problems += generator_problems(
            spectral_abscissa=spectral_abscissa(saved.W), target_abscissa=target
        )
    return list(dict.fromkeys(problems))


def _warnings(
    network: _Network,
    n_units: int,
    fit: ModelPrediction,
    ceiling: dict[str, Any],
) -> tuple[list[str], dict[str, Any]]:
    """The honest warnings, each with the metric behind it."""
    warnings: list[str] = []
    too_many = network.n_excitatory > n_units
    if too_many:
        warnings.append(
            f"the network has {network.n_excitatory} excitatory units for {n_units} recorded "
            "neurons: more readout units than data, so the fit can follow trial noise"
        )
    if ceiling["above"]:
        warnings.append(
            f"in-sample fit above the noise ceiling: train PSTH R² {ceiling['train_psth_r2']:.3f} "
            f"> the PSTHs' split-half reliability {ceiling['psth_reliability']:.3f} "
            "(Spearman-Brown): the fit follows trial noise"
        )
    stop_reason = fit.info["stop_reason"]
    if stop_reason in ("max_iterations", "stalled"):
        warnings.append(
            f"the network's Poisson fit did not converge (stop reason {stop_reason} after "
            f"{fit.info['iterations']} iterations): raise max_iterations"
        )
    provenance = _provenance_problems(network.saved)
    warnings += [f"the network given: {problem}" for problem in provenance]
    metrics = {
        "excitatory_exceeds_neurons": too_many,
        "above_noise_ceiling": ceiling["above"],
        "network_provenance_problems": provenance,
    }
    return warnings, metrics


def _jpca(trials: SpikeTrials, network: ModelPrediction) -> dict[str, Any]:
    """jPCA of the data's PSTHs and of the network's condition-averaged predictions (window,
    all neurons, soft-normalised), each with R² of the full fit and every plane's frequency.

    The held-in and held-out neurons are averaged apart and joined as (conditions, time,
    neurons) averages: joining every trial first took ~0.9 GB at MC_Maze's size."""
    data, labels = trial_psths(trials)
    averages = [
        condition_average(rates, trials.condition) for rates in (network.heldin, network.heldout)
    ]
    model = np.concatenate([average[0] for average in averages], axis=-1)
    assert labels == averages[0][1]
    scale = (
        data.max(axis=(0, 1)) - data.min(axis=(0, 1)) + JPCA_SOFT_NORMALISATION * trials.bin_width
    )
    found: dict[str, Any] = {}
    for name, x in (("data", data), ("network", model)):
        try:
            result = jpca(x / scale, trials.bin_width)
        except ValueError as error:
            found[name] = {"note": f"jPCA left out: {error}"}
            continue
        found[name] = _jpca_summary(result)
    return found


def _jpca_summary(result: JPCAResult) -> dict[str, Any]:
    return {
        "ratio": result.ratio,
        "r2_skew": result.r2_skew,
        "r2_full": result.r2_full,
        "frequency_hz": result.frequency_hz,
        "frequencies_hz": list(result.frequencies_hz),
        "variance_captured": result.variance_captured,
    }


# --- artifacts -----------------------------------------------------------------------------------


def _write_predictions(
    path: Path, dataset: str, trials: SpikeTrials, network: ModelPrediction
) -> None:
    """``nlb_predictions.h5``: the network's rates in NLB's submission layout: its test-trial
    rates (``eval_*``), and its train and val trials' rates (``train_*``), from which NLB's
    ``evaluate`` fits the velocity decoder as :func:`score_spike_trials` does."""
    test = trials.mask("test")
    fitted = trials.mask("train") | trials.mask("val")
    n_heldin = trials.heldin.shape[2]
    forward = (
        network.forward
        if network.forward is not None
        else np.zeros((trials.n_trials, 0, n_heldin + trials.heldout.shape[2]))
    )
    arrays = {
        "eval_rates_heldin": network.heldin[test],
        "eval_rates_heldout": network.heldout[test],
        "eval_rates_heldin_forward": forward[test][..., :n_heldin],
        "eval_rates_heldout_forward": forward[test][..., n_heldin:],
        "train_rates_heldin": network.heldin[fitted],
        "train_rates_heldout": network.heldout[fitted],
    }
    with h5py.File(path, "w") as handle:
        group = handle.create_group(dataset)
        for name, array in arrays.items():
            group.create_dataset(name, data=np.asarray(array, dtype=np.float32))


def _write_artifacts(
    spec: FitDataSpec,
    context: JobContext,
    trials: SpikeTrials,
    network: _Network,
    models: dict[str, ModelPrediction],
    dataset: str,
) -> None:
    fit = models["network"]
    extra = fit.extra
    metadata = {
        "kind": "fit_data",
        "observation": "poisson",
        "n_excitatory": str(network.n_excitatory),
        "tau": str(spec.tau),
        "dt": str(trials.bin_width),
        "integration_dt": str(spec.spike_step),
        "integrator": "heun",
        "gain": spec.gain,
        "conditions": fit.info["conditions"],
        "window": list(spec.recording.window),
        "prior_width": str(fit.info["prior_width"]),
        "seed": str(spec.seed),
        "spec_sha256": spec_sha256(spec),
        "lifrnn_version": __version__,
    }
    write_safetensors(
        context.artifact_path("network.safetensors"),
        {
            "W": network.W,
            "h": network.h,
            "x_sp": network.x_sp,
            "initial_states": extra["x_star"],
            "C": extra["C"],
            "b": extra["b"],
            "heldin_units": trials.heldin_units,
            "heldout_units": trials.heldout_units,
        },
        metadata,
    )
    _write_predictions(context.artifact_path("nlb_predictions.h5"), dataset, trials, fit)
    test = trials.mask("test")
    outputs: dict[str, np.ndarray] = {
        "data.heldin": trials.heldin[test],
        "data.heldout": trials.heldout[test],
        "data.heldin_forward": trials.heldin_forward[test],
        "data.heldout_forward": trials.heldout_forward[test],
        "time": trials.time,
        "initial_states": extra["initial_states"][test],
    }
    for name, prediction in models.items():
        for part, array in prediction.test_rows(test).tensors().items():
            outputs[f"{name}.{part}"] = np.asarray(array, dtype=np.float32)
    write_safetensors(
        context.artifact_path("spike_fit.safetensors"),
        outputs,
        {
            **metadata,
            "models": list(models),
            "test_conditions": [str(c) for c in trials.condition[test]],
        },
    )


# --- the runner ----------------------------------------------------------------------------------


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


def _metrics(
    spec: FitDataSpec,
    trials: SpikeTrials,
    network: _Network,
    n_units: int,
    models: dict[str, ModelPrediction],
    scores: dict[str, NLBScores],
    notes: list[str],
) -> dict[str, Any]:
    """Every model's four scores (``scores``, made as the models were), the headline, the
    warnings and the fit's own numbers."""
    for name, score in scores.items():
        notes += [f"{name}: {note}" for note in score.notes]
    fit = models["network"]
    baseline_scores = {name: s.co_bps for name, s in scores.items() if name != "network"}
    strongest = (
        max(baseline_scores, key=lambda name: baseline_scores[name]) if baseline_scores else None
    )
    margin = None if strongest is None else _margin(trials, fit, models[strongest], spec.seed)
    network_co_bps = scores["network"].co_bps
    beats = strongest is not None and network_co_bps > baseline_scores[strongest]
    finding = bool(beats and margin is not None and margin["interval"][0] > 0)
    n_test = int(trials.mask("test").sum())
    n_heldout = int(trials.heldout.shape[2])
    text = headline(
        network_co_bps,
        n_heldout,
        n_test,
        strongest,
        None if strongest is None else baseline_scores[strongest],
        finding,
    )
    ceiling = _noise_ceiling(spec, trials, fit)
    warnings, warning_metrics = _warnings(network, n_units, fit, ceiling)
    if trials.behavior is None:
        notes.append("vel_r2 left out for every model: the file has no hand velocity")
    split = {name: int(trials.mask(name).sum()) for name in ("train", "val", "test")}
    return {
        "observation": "poisson",
        "nlb": {
            "bin_width": trials.bin_width,
            "split": {**split, "rule": trials.split_rule},
            "heldin_neurons": int(trials.heldin.shape[2]),
            "heldout_neurons": n_heldout,
            "scores": {
                name: {
                    "co_bps": score.co_bps,
                    "fp_bps": score.fp_bps,
                    "vel_r2": score.vel_r2,
                    "psth_r2": score.psth_r2,
                }
                for name, score in scores.items()
            },
            "strongest_baseline": strongest,
            "beats_strongest_baseline": bool(beats),
            "finding": finding,
            "margin": margin,
            "headline": text,
            "notes": list(dict.fromkeys(notes)),
        },
        "initial_state_variance_explained": fit.info["trial_variance_explained"],
        "initial_state_variance_explainable": fit.info["trial_variance_explainable"],
        "noise_ceiling": ceiling,
        "warnings": warnings,
        **warning_metrics,
        "converged": fit.info["converged"],
        "stop_reason": fit.info["stop_reason"],
        "iterations": fit.info["iterations"],
        "regularisation": {
            "readout_decay": fit.info["readout_decay"],
            "state_prior": fit.info["state_prior"],
            "prior_width": fit.info["prior_width"],
        },
        "models": {
            name: prediction.info
            for name, prediction in models.items()
            if name not in ("network", "random_network")
        },
        "jpca": _jpca(trials, fit),
        "conditions": len(np.unique(trials.condition)),
        "neurons": n_units,
        "trials_used": trials.n_trials,
        "excluded_trials": dict(trials.excluded_trials),
        "spectral_abscissa": spectral_abscissa(network.W),
        **euler_step_metrics(network.W, spec.tau, spec.spike_step, logger),
        "n": int(network.W.shape[0]),
        "n_excitatory": network.n_excitatory,
    }
