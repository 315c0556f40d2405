"""Ground truth with spikes (issue 28, point 7): on a ``synth-nwb --spikes``-style file, the
network that generated the spikes, fitted by the ``fit_data`` job, beats every baseline on
co-bps and comes within 0.02 of the co-bps of the true rates; on a file with no network behind it
(white-noise latents), a network does not win by more than the noise.

The noise is the bootstrap over test trials of the network's co-bps minus the strongest
baseline's (``metrics["nlb"]["margin"]``): "more than the noise" is an interval whose lower end
is above zero, which the job calls "a finding".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import networks

from lifrnn.files import write_safetensors
from lifrnn.jobs import run_job
from lifrnn.jobs.base import JobContext
from lifrnn.nwb import NWBLayout, read_nwb, write_nwb
from lifrnn.results import JobResult
from lifrnn.specs import FitDataSpec
from lifrnn_core.nlb_metrics import co_bps
from lifrnn_core.spike_trials import spike_trials
from lifrnn_core.synthetic_recordings import (
    SyntheticRecording,
    synthesize_white_noise_recording,
)

pytestmark = pytest.mark.slow

N, NEURONS, PER_CONDITION, CONDITIONS = 40, 40, 30, 8
ID = "3f2b8c1e-0000-4000-8000-000000000001"
SPEC = {
    "network": ID,
    "data": ID,
    "max_iterations": 40,
    "spikes": {
        "readout_decays": [1e-3, 1e-2],
        "state_priors": [1e-2],
        "gpfa_latent_dims": [2, 4],
        "gpfa_em_iterations": 10,
        "baselines": ["smoothing", "gpfa", "ridge", "condition_mean"],
    },
}


@pytest.fixture(scope="module")
def generator(one_thread: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    W, n_e = networks.kao2021(N)
    reaches = networks.reaches(W, n_e, conditions=CONDITIONS, max_iterations=30)
    folder = tmp_path_factory.mktemp("ground-truth")
    network = write_safetensors(
        folder / "network.safetensors",
        {"W": W, "x_sp": reaches.x_sp},
        {"kind": "fit", "n_excitatory": str(n_e)},
    )
    return {"W": W, "n_e": n_e, "reaches": reaches, "network": network}


def fitted(synthetic: SyntheticRecording, network: Path, folder: Path) -> tuple[JobResult, float]:
    """The job's result on ``synthetic``, and the co-bps of its true rates on the test trials."""
    data = write_nwb(folder / "session.nwb", synthetic)
    spec = FitDataSpec.model_validate(SPEC)
    result = run_job(
        spec, JobContext(out_dir=folder / "out", inputs={"data": data, "network": network})
    )
    assert result.status == "succeeded", result.error
    trials = spike_trials(
        read_nwb(data, NWBLayout(), ["move_onset_time"]), spec.spike_trials_config()
    )
    n_time = trials.heldout.shape[1]
    assert synthetic.trial_rates is not None
    true = synthetic.trial_rates[trials.trial_index][:, :n_time][..., trials.heldout_units]
    test = trials.mask("test")
    return result, co_bps(true[test].astype(np.float64) * trials.bin_width, trials.heldout[test])


@pytest.fixture(scope="module")
def network_job(
    generator: dict, tmp_path_factory: pytest.TempPathFactory
) -> tuple[JobResult, float]:
    """The job on spikes from the generating network, and the true rates' co-bps."""
    synthetic = networks.recording(
        generator["W"],
        generator["n_e"],
        generator["reaches"],
        trials_per_condition=PER_CONDITION,
        neurons=NEURONS,
        seed=0,
        initial_state_noise=0.5,
    )
    return fitted(synthetic, generator["network"], tmp_path_factory.mktemp("network"))


def test_the_generating_network_beats_every_baseline(network_job: tuple[JobResult, float]) -> None:
    result, _ = network_job
    scores = {name: s["co_bps"] for name, s in result.metrics["nlb"]["scores"].items()}
    network = scores.pop("network")
    assert network > max(scores.values()), scores


@pytest.mark.xfail(
    strict=True,
    reason="issue 28.7 open, and not reachable on this file by inference from held-in neurons: "
    "with every parameter known (the true x*, a Poisson readout fitted on the true single-trial "
    "states, the true prior width), MAP inference from the 30 held-in neurons scores ~0.04 "
    "co-bps below the true rates; the fit's x* is far from the true one (the 8 PSTHs do not "
    "pin it down), and the network scores ~0.1 below (docs/science.md, 'Ground truth with "
    "spikes')",
)
def test_the_generating_network_nears_the_true_rates(network_job: tuple[JobResult, float]) -> None:
    result, truth = network_job
    network = result.metrics["nlb"]["scores"]["network"]["co_bps"]
    assert abs(network - truth) < 0.02, (network, truth)


def test_without_a_network_behind_the_spikes_the_network_wins_by_no_more_than_the_noise(
    generator: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    synthetic = synthesize_white_noise_recording(
        conditions=CONDITIONS,
        trials_per_condition=PER_CONDITION,
        neurons=NEURONS,
        seed=0,
        trial_noise=0.5,
    )
    result, _ = fitted(synthetic, generator["network"], tmp_path_factory.mktemp("white-noise"))
    nlb = result.metrics["nlb"]
    assert not nlb["finding"], nlb["headline"]
    assert nlb["margin"]["interval"][0] <= 0
