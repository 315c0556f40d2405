"""A ``fit_data`` job on spike trains (issue 28, points 2, 3, 5, 6 and 10): an NWB file in the
MC_Maze layout goes in, the Neural Latents Benchmark's scores of the network and of every
baseline come out, on the same test trials, with a headline that says where the network stands.

The recording is tiny (a kao2021 network of 40 units, 8 reaches, 20 trials each, 24 neurons)
and the fit short: this checks the job's contract, not the science
(tests/science/test_nlb_ground_truth.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from helpers import networks

from lifrnn.files import read_safetensors, write_safetensors
from lifrnn.jobs import run_job
from lifrnn.jobs.base import JobContext
from lifrnn.nwb import inspect_nwb, write_nwb
from lifrnn.results import JobResult
from lifrnn.specs import FitDataSpec, InputFacts
from lifrnn_core.nlb_metrics import co_bps

N, NEURONS = 40, 24
ID = "3f2b8c1e-0000-4000-8000-000000000001"
MODELS = {"network", "random_network", "smoothing", "gpfa", "ridge", "condition_mean"}
QUICK = {
    "observation": "auto",
    "max_iterations": 4,
    "recording": {"window": [-0.1, 0.2]},
    "spikes": {
        "forward": 0.05,
        "readout_decays": [1e-2],
        "state_priors": [1e-2],
        "single_trial_rounds": 0,
        "gpfa_latent_dims": [2],
        "gpfa_em_iterations": 5,
    },
}


@pytest.fixture(scope="module")
def files(one_thread: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A spiking NWB file with per-trial initial-state noise, and the network behind it."""
    folder = tmp_path_factory.mktemp("spikes-job")
    W, n_e = networks.kao2021(N)
    reaches = networks.reaches(W, n_e, max_iterations=5)
    synthetic = networks.recording(
        W, n_e, reaches, trials_per_condition=20, neurons=NEURONS, seed=0, initial_state_noise=0.5
    )
    network = write_safetensors(
        folder / "network.safetensors",
        {"W": W, "x_sp": reaches.x_sp},
        {"kind": "soc", "n_excitatory": str(n_e), "method": "kao2021"},
    )
    return {"data": write_nwb(folder / "session.nwb", synthetic), "network": network}


@pytest.fixture(scope="module")
def job(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> JobResult:
    spec = FitDataSpec.model_validate({"network": ID, "data": ID, **QUICK})
    context = JobContext(out_dir=tmp_path_factory.mktemp("out"), inputs=dict(files))
    return run_job(spec, context)


def test_the_job_reports_every_model_under_nlbs_four_scores(job: JobResult) -> None:
    assert job.status == "succeeded", job.error
    nlb = job.metrics["nlb"]
    assert set(nlb["scores"]) == MODELS
    for scores in nlb["scores"].values():
        assert set(scores) == {"co_bps", "fp_bps", "vel_r2", "psth_r2"}
        assert np.isfinite(scores["co_bps"])
    assert nlb["scores"]["ridge"]["fp_bps"] is None  # ridge does not forecast: left out
    assert np.isfinite(nlb["scores"]["network"]["vel_r2"])
    assert nlb["split"]["rule"] == "file" and nlb["heldout_neurons"] == 6
    assert nlb["heldin_neurons"] + nlb["heldout_neurons"] == NEURONS
    for key in ("initial_state_variance_explained", "warnings", "converged", "stop_reason"):
        assert key in job.metrics
    assert {"r2_full", "frequencies_hz"} <= set(job.metrics["jpca"]["data"])
    # 32 excitatory units read by 24 neurons: said, as a metric and in words
    assert job.metrics["excitatory_exceeds_neurons"] is True
    assert any("32 excitatory units for 24 recorded" in line for line in job.metrics["warnings"])


def test_every_model_is_scored_on_the_same_test_trials(job: JobResult) -> None:
    tensors, _ = read_safetensors(Path(job.artifacts["spike_fit.safetensors"]))
    heldout = tensors["data.heldout"]
    n_test = job.metrics["nlb"]["split"]["test"]
    assert heldout.shape[0] == n_test
    for model, scores in job.metrics["nlb"]["scores"].items():
        rates = tensors[f"{model}.heldout"].astype(np.float64)
        assert rates.shape == heldout.shape
        assert co_bps(rates, heldout) == pytest.approx(scores["co_bps"], abs=1e-5)
    with h5py.File(job.artifacts["nlb_predictions.h5"], "r") as handle:
        group = handle[job.metrics["nlb"]["dataset"]]
        assert group["eval_rates_heldout"].dtype == np.float32
        np.testing.assert_allclose(group["eval_rates_heldout"][()], tensors["network.heldout"])
    network, _ = read_safetensors(Path(job.artifacts["network.safetensors"]))
    assert network["C"].shape == (NEURONS, 32) and network["initial_states"].shape == (8, N)


def test_the_headline_says_what_the_numbers_say(job: JobResult) -> None:
    nlb = job.metrics["nlb"]
    scores = nlb["scores"]
    baselines = {name: s["co_bps"] for name, s in scores.items() if name != "network"}
    strongest = max(baselines, key=baselines.__getitem__)
    assert nlb["strongest_baseline"] == strongest
    network = scores["network"]["co_bps"]
    assert nlb["beats_strongest_baseline"] == (network > baselines[strongest])
    match = re.fullmatch(
        r"the network's co-bps (\S+) on (\d+) held-out neurons of (\d+) test trials is "
        r"(above|below) the strongest baseline \((\w+), (\S+)\): (a finding|not a finding)",
        nlb["headline"],
    )
    assert match is not None, nlb["headline"]
    x, heldout, tests, side, name, y, verdict = match.groups()
    assert float(x) == pytest.approx(network, abs=5e-5)
    assert (int(heldout), int(tests)) == (nlb["heldout_neurons"], nlb["split"]["test"])
    assert side == ("above" if nlb["beats_strongest_baseline"] else "below")
    assert (name, float(y)) == (strongest, pytest.approx(baselines[strongest], abs=5e-5))
    low = nlb["margin"]["interval"][0]
    assert verdict == (
        "a finding" if nlb["beats_strongest_baseline"] and low > 0 else "not a finding"
    )


def test_a_file_without_move_onset_or_with_too_few_heldout_neurons_is_refused_at_submit(
    files: dict[str, Path],
) -> None:
    summary = inspect_nwb(files["data"])
    spec = FitDataSpec.model_validate({"network": ID, "data": ID})
    spec.check_inputs({"data": InputFacts(name="file 'session.nwb'", header=summary)})
    without = {
        **summary,
        "trial_columns": [c for c in summary["trial_columns"] if c != "move_onset_time"],
    }
    with pytest.raises(ValueError, match=r"'move_onset_time'.* missing"):
        spec.check_inputs({"data": InputFacts(name="file", header=without)})
    unmarked = {**summary, "unit_tables": {"units": {"rows": NEURONS, "columns": ["spike_times"]}}}
    few = FitDataSpec.model_validate({"network": ID, "data": ID, "heldout_fraction": 0.04})
    with pytest.raises(ValueError, match=r"holds out 1; .*minimum 2"):
        few.check_inputs({"data": InputFacts(name="file", header=unmarked)})
    with pytest.raises(ValueError, match="at least 6"):
        spec.check_inputs({"data": InputFacts(name="file", header={**summary, "trials": 4})})
