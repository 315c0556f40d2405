"""Runner of ``kind: "fit_data"`` jobs: a network fitted to recorded activity, cross-validated
beside a random E/I network and the mean over conditions (docs/science.md §8). Spike trains
(``observation: "poisson"``) are fitted and scored by :mod:`lifrnn.jobs.fit_spikes`.

Stages, each saved as a checkpoint when done so that a job run again (on any worker) resumes
after the last finished stage: cross-validation of the network, cross-validation of the random
baseline, the final fit on every condition.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lifrnn import __version__
from lifrnn.figure_recipes import FigureRecipe
from lifrnn.files import read_safetensors, write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.numerics import euler_step_metrics
from lifrnn.networks import load_network
from lifrnn.results import JobResult
from lifrnn.specs import spec_sha256
from lifrnn.specs.fit_data import FitDataSpec
from lifrnn_core.data_fitting import (
    CrossValidation,
    DataFitConfig,
    FoldScore,
    cross_validate,
    fit_to_data,
    random_like,
)
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.jpca import JPCAResult, jpca
from lifrnn_core.recordings import (
    ConditionAverages,
    condition_averages_from_rates,
    preprocess,
    principal_components,
)

logger = logging.getLogger(__name__)

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
EXAMPLE_NEURONS = 6
"""Neurons shown in the PSTH figure."""


def load_data(spec: FitDataSpec, path: Path) -> ConditionAverages:
    """The condition-averaged rates of the stored file at ``path`` (an NWB recording or a
    ``.safetensors`` of averaged rates), at the spec's ``dt``."""
    recording = spec.recording
    if path.suffix == ".nwb":
        from lifrnn.nwb import read_nwb

        raw = read_nwb(path, spec.nwb_layout(), events=[recording.align_event])
        return preprocess(raw, spec.preprocess_config())
    tensors, metadata = read_safetensors(path)
    if "rates" not in tensors or tensors["rates"].ndim != 3:
        raise InvalidNetworkError("data: the file holds no 'rates' (conditions, time, neurons)")
    rates = np.asarray(tensors["rates"], dtype=np.float64)
    if "dt" in tensors:
        dt = float(np.asarray(tensors["dt"]).reshape(-1)[0])
    elif "dt" in metadata:
        dt = float(metadata["dt"])
    else:
        raise InvalidNetworkError("data: the file gives no 'dt' (a tensor or metadata)")
    behavior = tensors.get("behavior")
    behavior = None if behavior is None else np.asarray(behavior, dtype=np.float64)
    if abs(dt - spec.dt) > 1e-9 * spec.dt:
        rates, behavior = _resampled(rates, behavior, dt, spec.dt)
    labels = metadata.get("conditions")
    return condition_averages_from_rates(
        rates,
        spec.dt,
        behavior=behavior if spec.fit_behavior else None,
        soft_normalisation=recording.soft_normalisation,
        conditions=json.loads(labels) if labels else None,
        n_pcs=recording.n_pcs,
    )


def _resampled(
    rates: np.ndarray, behavior: np.ndarray | None, dt: float, new_dt: float
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rates (and behaviour) linearly interpolated from step ``dt`` onto step ``new_dt``."""
    old = np.arange(rates.shape[1]) * dt
    new = np.arange(0.0, old[-1] + 1e-12, new_dt)
    if len(new) < 2:
        raise InvalidNetworkError(f"data: {rates.shape[1]} samples of {dt} s are too short")

    def resample(x: np.ndarray) -> np.ndarray:
        flat = x.transpose(1, 0, 2).reshape(len(old), -1)
        out = np.stack([np.interp(new, old, column) for column in flat.T], axis=1)
        return out.reshape(len(new), x.shape[0], x.shape[2]).transpose(1, 0, 2)

    return resample(rates), None if behavior is None else resample(behavior)


def _network(
    spec: FitDataSpec, context: JobContext, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(W, h, x_sp, n_excitatory) of the referenced network."""
    saved = load_network(context.input_path("network"))
    W = torch.from_numpy(saved.W).to(device, dtype)
    if "x_sp" in saved.tensors:
        x_sp = torch.from_numpy(saved.tensors["x_sp"]).to(device, dtype)
    else:
        x_sp = spontaneous_state(W.shape[0], torch.Generator().manual_seed(spec.seed)).to(
            device, dtype
        )
    return W, background_input(W, x_sp, spec.gain), x_sp, saved.n_excitatory


def _config(spec: FitDataSpec, averages: ConditionAverages, behavior: bool) -> DataFitConfig:
    return DataFitConfig(
        tau=spec.tau,
        dt=spec.dt,
        integration_dt=spec.integration_dt,
        gain=spec.gain,
        state_radius=spec.state_radius,
        n_modes=spec.n_modes,
        ridge=spec.ridge,
        behavior_weight=spec.behavior_weight,
        silent_samples=int((averages.time < 0).sum()) if behavior else 0,
        mode=spec.mode,
        max_iterations=spec.max_iterations,
        relative_tolerance=spec.relative_tolerance,
        learning_rate=spec.learning_rate,
        stability_bound=spec.stability_bound,
    )


def _save_cv(context: JobContext, name: str, cv: CrossValidation) -> None:
    context.save_checkpoint(
        name,
        {"predicted_heldout": cv.predicted_heldout},
        1,
        {"folds": json.dumps([asdict(fold) for fold in cv.folds])},
        force=True,
    )


def _load_cv(context: JobContext, name: str) -> CrossValidation | None:
    if context.checkpoints is None:
        return None
    found = context.checkpoints.load(name)
    if found is None:
        return None
    tensors, _, metadata = found
    folds = [FoldScore(**fold) for fold in json.loads(metadata["folds"])]
    return CrossValidation.from_folds(folds, tensors["predicted_heldout"])


def _jpca_summary(result: JPCAResult) -> dict[str, float]:
    return {
        "ratio": result.ratio,
        "r2_skew": result.r2_skew,
        "r2_full": result.r2_full,
        "frequency_hz": result.frequency_hz,
        "variance_captured": result.variance_captured,
    }


def _examples(r2: list[float], count: int) -> list[int]:
    """Neurons spanning the held-out R² range: best, worst and evenly between."""
    scored = [i for i in np.argsort(np.nan_to_num(r2, nan=-np.inf))[::-1] if np.isfinite(r2[i])]
    if len(scored) <= count:
        return sorted(int(i) for i in scored)
    picks = np.linspace(0, len(scored) - 1, count).round().astype(int)
    return [int(scored[p]) for p in picks]


def _cv_rows(model: CrossValidation, random: CrossValidation | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, fold in enumerate(model.folds):
        rows.append(
            {
                "fold": index + 1,
                "train": len(fold.train_conditions),
                "test": len(fold.test_conditions),
                "r2_train": fold.r2_train,
                "r2_heldout": float(np.mean(fold.r2_heldout)),
                "r2_random": None
                if random is None
                else float(np.mean(random.folds[index].r2_heldout)),
                "r2_mean": float(np.mean(fold.r2_mean_predictor)),
            }
        )
    rows.append(
        {
            "fold": "mean",
            "train": None,
            "test": None,
            "r2_train": model.r2_train,
            "r2_heldout": model.r2_heldout,
            "r2_random": None if random is None else random.r2_heldout,
            "r2_mean": model.r2_mean_predictor,
        }
    )
    return rows


def run_fit_data(spec: FitDataSpec, context: JobContext) -> JobResult:
    """Preprocess the recording, cross-validate the network and the baselines, fit every
    condition; write ``network.safetensors``, ``data_fit.safetensors`` and two figures.

    Spike trains (``observation`` ``poisson``, or ``auto`` with an NWB file) go to
    :func:`lifrnn.jobs.fit_spikes.run_fit_spikes` instead."""
    nwb = context.input_path("data").suffix == ".nwb"
    if spec.resolved_observation(nwb) == "poisson":
        if not nwb:
            raise InvalidNetworkError(
                "observation: 'poisson' needs spike trains, an NWB recording (use 'gaussian' "
                "or 'auto' for a .safetensors of averaged rates)"
            )
        from lifrnn.jobs.fit_spikes import run_fit_spikes

        return run_fit_spikes(spec, context)
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise InvalidNetworkError("device 'cuda' requested but torch sees no CUDA device")
    device, dtype = torch.device(spec.device), _DTYPES[spec.dtype]
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    context.report(0.0, "reading and preprocessing the recording", milestone=True)
    averages = load_data(spec, context.input_path("data"))
    seconds["preprocess"] = time.perf_counter() - start
    n_conditions, n_time, n_neurons = averages.normalised.shape
    if n_conditions < spec.folds:
        raise InvalidNetworkError(
            f"folds: {spec.folds} folds need at least as many conditions; the recording gives "
            f"{n_conditions} after preprocessing"
        )
    W, h, x_sp, n_excitatory = _network(spec, context, device, dtype)
    data = torch.from_numpy(np.ascontiguousarray(averages.normalised)).to(device, dtype)
    behavior = (
        torch.from_numpy(np.ascontiguousarray(averages.behavior)).to(device, dtype)
        if spec.fit_behavior and averages.behavior is not None
        else None
    )
    config = _config(spec, averages, behavior is not None)
    numerics = euler_step_metrics(W, spec.tau, spec.euler_step, logger)
    fits_total = 1 + spec.folds * (2 if spec.baselines else 1)
    done = [0]

    def stage(fraction_of_fit: float, message: str) -> None:
        context.report(0.02 + 0.93 * (done[0] + fraction_of_fit) / fits_total, message)

    def on_iteration(iteration: int, cost: float) -> None:
        stage(min(iteration / spec.max_iterations, 0.99), f"iteration {iteration}: {cost:.3g}")

    def on_fold(index: int, message: str) -> None:
        done[0] = fold_base[0] + index
        stage(0.0, message)

    fold_base = [0]
    cross = {}
    for name, network in (("model", (W, h)), ("random", None)):
        if name == "random" and not spec.baselines:
            continue
        fold_base[0] = 0 if name == "model" else spec.folds
        begun = time.perf_counter()
        found = _load_cv(context, f"cv_{name}")
        if found is not None:
            context.report(
                0.02 + 0.93 * (fold_base[0] + spec.folds) / fits_total,
                f"cross-validation of the {name} network resumed from its checkpoint",
                milestone=True,
            )
            cross[name] = found
            continue
        if network is None:
            W_random = random_like(W, n_excitatory, torch.Generator().manual_seed(spec.seed + 1))
            network = (W_random, background_input(W_random, x_sp, spec.gain))
        cross[name] = cross_validate(
            network[0],
            network[1],
            x_sp,
            data,
            n_excitatory=n_excitatory,
            config=config,
            folds=spec.folds,
            seed=spec.seed,
            heldout_fraction=spec.heldout_fraction,
            behavior=behavior,
            on_fold=on_fold,
            callback=on_iteration,
        )
        _save_cv(context, f"cv_{name}", cross[name])
        seconds[f"cross_validation_{name}"] = time.perf_counter() - begun
    done[0] = fits_total - 1
    begun = time.perf_counter()
    stage(0.0, f"fitting all {n_conditions} conditions")

    def on_final(iteration: int, cost: float) -> None:
        context.record("cost", iteration, cost)
        on_iteration(iteration, cost)

    final = fit_to_data(
        W,
        h,
        x_sp,
        data,
        n_excitatory=n_excitatory,
        config=config,
        generator=torch.Generator().manual_seed(spec.seed),
        behavior=behavior,
        callback=on_final,
    )
    seconds["final_fit"] = time.perf_counter() - begun
    context.report(0.96, "jPCA, figures and files")
    data_np = averages.normalised
    model_np = final.predicted.cpu().double().numpy()
    jpca_data = jpca(data_np, spec.dt)
    jpca_model = jpca(model_np, spec.dt)
    model_cv = cross["model"]
    random_cv = cross.get("random")
    metrics: dict[str, Any] = {
        "conditions": n_conditions,
        "neurons": n_neurons,
        "time_samples": n_time,
        "trials_used": int(np.sum(averages.trial_counts)),
        "excluded_trials": dict(averages.excluded_trials),
        "dropped_units": averages.dropped_units,
        "r2_train": model_cv.r2_train,
        "r2_heldout": model_cv.r2_heldout,
        "r2_heldout_per_neuron": model_cv.r2_heldout_per_neuron,
        "r2_heldout_mean_predictor": model_cv.r2_mean_predictor,
        "r2_heldout_random": None if random_cv is None else random_cv.r2_heldout,
        "r2_train_random": None if random_cv is None else random_cv.r2_train,
        "r2_all_conditions": final.r2,
        "r2_initial": final.r2_initial,
        "behavior_r2": final.behavior_r2,
        "variance_top6_data": jpca_data.variance_captured,
        "variance_top6_model": jpca_model.variance_captured,
        "jpca_ratio_data": jpca_data.ratio,
        "jpca_r2_full_data": jpca_data.r2_full,
        "jpca_frequency_hz_data": jpca_data.frequency_hz,
        "jpca_frequencies_hz_data": list(jpca_data.frequencies_hz),
        "jpca_ratio_model": jpca_model.ratio,
        "jpca_r2_full_model": jpca_model.r2_full,
        "jpca_frequency_hz_model": jpca_model.frequency_hz,
        "jpca_frequencies_hz_model": list(jpca_model.frequencies_hz),
        "spectral_abscissa": spectral_abscissa(final.W),
        **numerics,
        "iterations": final.iterations,
        "converged": final.converged,
        "stop_reason": final.stop_reason,
        "folds": spec.folds,
        "cv_table": _cv_rows(model_cv, random_cv),
        "seconds": {key: round(value, 3) for key, value in seconds.items()},
        "n": int(W.shape[0]),
        "n_excitatory": n_excitatory,
    }
    metadata = {
        "kind": "fit_data",
        "n_excitatory": str(n_excitatory),
        "tau": str(spec.tau),
        "dt": str(spec.dt),
        "integration_dt": str(spec.euler_step),
        "gain": spec.gain,
        "mode": spec.mode,
        "conditions": averages.conditions,
        "window": list(spec.recording.window),
        "seed": str(spec.seed),
        "spec_sha256": spec_sha256(spec),
        "lifrnn_version": __version__,
    }
    tensors: dict[str, Any] = {
        "W": final.W,
        "h": final.h,
        "x_sp": x_sp,
        "initial_states": final.x_star,
        "D": final.readout.D,
        "b": final.readout.b,
    }
    if final.behavior_readout is not None:
        tensors["velocity_readout"] = final.behavior_readout.D
        tensors["velocity_offset"] = final.behavior_readout.b
    write_safetensors(context.artifact_path("network.safetensors"), tensors, metadata)
    outputs: dict[str, Any] = {
        "data": data_np,
        "model": model_np,
        "heldout": model_cv.predicted_heldout,
        "rates": averages.rates,
        "scale": averages.scale,
        "time": averages.time,
        "units": averages.units,
    }
    if behavior is not None and final.behavior_predicted is not None:
        outputs["behavior"] = behavior
        outputs["behavior_model"] = final.behavior_predicted
    write_safetensors(context.artifact_path("data_fit.safetensors"), outputs, metadata)
    _figures(spec, context, averages, model_np, model_cv, random_cv, jpca_data, jpca_model)
    seconds["total"] = time.perf_counter() - start
    metrics["seconds"]["total"] = round(seconds["total"], 3)
    return JobResult(
        kind="fit_data", status="succeeded", metrics=metrics, artifacts=dict(context.artifacts)
    )


def _figures(
    spec: FitDataSpec,
    context: JobContext,
    averages: ConditionAverages,
    model: np.ndarray,
    model_cv: CrossValidation,
    random_cv: CrossValidation | None,
    jpca_data: JPCAResult,
    jpca_model: JPCAResult,
) -> None:
    data = averages.normalised
    title = f"fit to recordings: {data.shape[0]} conditions, {data.shape[2]} neurons"
    context.save_figure(
        "psth.png",
        FigureRecipe.of(
            "fit_data_psth",
            averages.time,
            data,
            model,
            model_cv.predicted_heldout,
            list(averages.conditions),
            _examples(model_cv.r2_heldout_per_neuron, EXAMPLE_NEURONS),
            np.asarray(model_cv.r2_heldout_per_neuron),
            title=title,
        ),
    )
    # The model in the data's PC space: one projection for both, as in the papers.
    _, components, mean, _ = principal_components(data, min(3, data.shape[2]))
    context.save_figure(
        "population.png",
        FigureRecipe.of(
            "fit_data_population",
            averages.time,
            (data - mean) @ components,
            (model - mean) @ components,
            jpca_data.projection,
            jpca_model.projection,
            {"data": _jpca_summary(jpca_data), "model": _jpca_summary(jpca_model)},
            np.asarray(model_cv.r2_heldout_per_neuron),
            None if random_cv is None else np.asarray(random_cv.r2_heldout_per_neuron),
            _cv_rows(model_cv, random_cv),
            title=title,
        ),
    )
