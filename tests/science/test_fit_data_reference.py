"""Ground truth for fitting to recordings: a synthetic MC_Maze-layout session made by a fitted
network (docs/science.md §8) is fitted back on that network, cross-validated.

The session: a kao2021 network (n = 50, 40 excitatory units) fitted to reaches in 27 directions;
50 trials per condition; 80 neurons mixing its excitatory rates (more neurons than excitatory
units, so that held-out neurons are determined by held-in ones), Poisson spikes, jittered
movement onsets, failed trials and one without an onset. Its noise ceiling (condition averages
against the true rates) is about 0.94.
"""

from __future__ import annotations

import pytest
import torch

from lifrnn.files import write_safetensors
from lifrnn.jobs.base import JobContext
from lifrnn.jobs.fit_data import run_fit_data
from lifrnn.nwb import write_nwb
from lifrnn.specs import FitDataSpec
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters
from lifrnn_core.synthetic_recordings import fit_reaches, synthesize_recording

pytestmark = pytest.mark.slow

HELDOUT_R2 = 0.8
"""Issue 14's bar. Measured: 0.810 (3 folds, 60 iterations; 0.816 at 100), the random network
0.624, the condition mean -0.04. The pipeline's ceiling on this file is 0.817: the true x* and
a map fitted on the training conditions' true rates score that on the same folds (noise, the
neurons' rectification and the 20 ms smoothing take the rest). With the simulation's Euler step
equal to the 10 ms bins the same fit scored 0.757: too coarse a step for this network."""
UNUSED_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("fit-data")
    params = SOCParameters.for_method("kao2021", n=50)
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    reaches = fit_reaches(W, params.n_excitatory, conditions=27)
    synthetic = synthesize_recording(
        W,
        params.n_excitatory,
        x_sp=reaches.x_sp,
        h=reaches.h,
        x_star=reaches.x_star,
        C=reaches.C,
        trials_per_condition=50,
        neurons=80,
    )
    data = write_nwb(folder / "session.nwb", synthetic)
    network = write_safetensors(
        folder / "network.safetensors",
        {"W": W, "x_sp": reaches.x_sp, "h": reaches.h},
        {"n_excitatory": str(params.n_excitatory), "kind": "soc"},
    )
    spec = FitDataSpec.model_validate(
        {
            "network": UNUSED_ID,
            "data": UNUSED_ID,
            "observation": "gaussian",
            "folds": 3,
            "max_iterations": 60,
        }
    )
    context = JobContext(
        out_dir=folder / "out", inputs={"network": network, "data": data}, defer_figures=True
    )
    result = run_fit_data(spec, context)
    assert result.status == "succeeded", result.error
    return result.metrics


def test_the_generating_network_predicts_held_out_neurons_on_held_out_conditions(
    fitted: dict,
) -> None:
    assert fitted["conditions"] == 27
    assert fitted["r2_heldout"] >= HELDOUT_R2


def test_the_random_network_and_the_condition_mean_score_lower(fitted: dict) -> None:
    assert fitted["r2_heldout_random"] < fitted["r2_heldout"]
    assert fitted["r2_heldout_mean_predictor"] < fitted["r2_heldout"]


def test_the_synthetic_data_rotate_and_the_model_does_too(fitted: dict) -> None:
    """Churchland et al. 2012's signature: most of the top PCs' dynamics is rotational."""
    assert fitted["jpca_ratio_data"] > 0.6
    assert fitted["jpca_frequency_hz_data"] > 0.5
    assert fitted["jpca_ratio_model"] > 0.6


def test_trials_without_an_onset_or_failed_are_left_out_and_counted(fitted: dict) -> None:
    excluded = fitted["excluded_trials"]
    assert excluded["missing_event"] >= 1 and excluded["failed"] >= 1
    assert fitted["trials_used"] == 27 * 50 - sum(excluded.values())
