"""The artifacts of the spike-train ``fit_data`` job (:mod:`lifrnn.jobs.fit_spikes`):
``network.safetensors`` (the fitted network), ``nlb_predictions.h5`` (the network's rates in
NLB's submission layout) and ``spike_fit.safetensors`` (every model's test-trial rates)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from lifrnn import __version__
from lifrnn.files import write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.spike_models import ModelPrediction, _Network
from lifrnn.specs import spec_sha256
from lifrnn.specs.fit_data import FitDataSpec
from lifrnn_core.spike_trials import SpikeTrials


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
