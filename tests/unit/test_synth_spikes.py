"""Single trials with a known truth (issue 28, points 6 and 7): ``lifrnn synth-nwb --spikes``
writes Poisson spikes of trials that each start from their own initial state, the held-out
neurons and the split as NLB's files have them, and every trial's true rates; ``--latents
white-noise`` writes the null with no network behind it; a generator too poor to stand for a
ground truth stops the command unless ``--allow-poor``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import networks
from typer.testing import CliRunner

from lifrnn.cli import app
from lifrnn.files import read_safetensors, write_safetensors
from lifrnn.networks import load_network
from lifrnn.nwb import NWBLayout, read_nwb, write_nwb
from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.gramians import spectral_abscissa
from lifrnn_core.recordings import Recording, bin_spikes
from lifrnn_core.synthetic_recordings import (
    HELDOUT_FRACTION,
    ReachFit,
    SyntheticRecording,
    generator_problems,
)

N, NEURONS, PER_CONDITION = 60, 30, 20
BIN = 0.005  # NLB's bins, seconds


def synth(*args: str):
    return CliRunner().invoke(app, ["synth-nwb", *args])


def said(output: str) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.fixture(scope="module")
def network(one_thread: None) -> tuple[torch.Tensor, int]:
    return networks.kao2021(N)


@pytest.fixture(scope="module")
def reaches(network: tuple[torch.Tensor, int]) -> ReachFit:
    return networks.reaches(*network)


@pytest.fixture(scope="module")
def recorded(
    network: tuple[torch.Tensor, int], reaches: ReachFit, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SyntheticRecording, Path, Recording]:
    """A recorded session of trials with initial-state noise, written and read back."""
    synthetic = networks.recording(
        *network,
        reaches,
        trials_per_condition=PER_CONDITION,
        neurons=NEURONS,
        seed=1,
        initial_state_noise=0.5,
    )
    path = write_nwb(tmp_path_factory.mktemp("spikes") / "spikes.nwb", synthetic)
    return synthetic, path, read_nwb(path, NWBLayout(), ["move_onset_time"])


def test_counts_read_back_from_the_file_follow_each_trials_true_rates(recorded):
    synthetic, _, recording = recorded
    onset = recording.trials.events["move_onset_time"]
    has = np.isfinite(onset)
    # NLB's alignment, computed here: the first 5 ms bin of the session's grid at or after
    # onset - 250 ms; the truth's 180 bins are the window's 140 and 40 of forward prediction.
    first = np.ceil(np.round((onset[has] - 0.25) / BIN, 6)) * BIN
    assert np.allclose(synthetic.trial_rate_start[has], first, atol=1e-9)
    assert np.all(np.isnan(synthetic.trial_rate_start[~has]))
    assert synthetic.trial_rates.shape == (len(onset), 180, NEURONS)
    counts = bin_spikes(recording.spike_times, first, 180, BIN)  # (trials, bins, neurons)
    expected = synthetic.trial_rates[has].astype(np.float64) * BIN  # spikes/s -> spikes/bin
    assert abs(counts.sum() - expected.sum()) < 4 * np.sqrt(expected.sum())  # 2 % would fail
    total, mean = counts.sum(axis=(0, 1)), expected.sum(axis=(0, 1))
    assert np.all(np.abs(total - mean) < 4.5 * np.sqrt(mean))
    # bin by bin (summed over trials) the counts scatter as Poisson counts of these means
    summed, lam = counts.sum(axis=0), expected.sum(axis=0)
    z2 = (summed - lam)[lam > 1] ** 2 / lam[lam > 1]
    assert abs(z2.mean() - 1) < 0.15


def test_trials_of_one_condition_start_from_their_own_states_and_fire_accordingly(
    recorded, reaches
):
    synthetic, _, recording = recorded
    x_star, x_sp = reaches.x_star.numpy(), reaches.x_sp.numpy()
    condition = synthetic.condition_index
    deviation = synthetic.initial_states - x_star[condition]
    sigma = 0.5 * np.sqrt(np.mean((x_star - x_sp) ** 2))
    assert synthetic.initial_state_sigma == pytest.approx(sigma)
    assert deviation.std() == pytest.approx(sigma, rel=0.05)
    assert np.abs(deviation.mean()) < 0.05 * sigma
    # spikes follow each trial's own rates, not only its condition's: the counts' deviations
    # from the condition mean grow one for one with the true rates' (50 ms sums)
    has = np.isfinite(synthetic.trial_rate_start)
    counts = bin_spikes(recording.spike_times, synthetic.trial_rate_start[has], 180, BIN)
    expected = synthetic.trial_rates[has].astype(np.float64) * BIN
    kept = condition[has]
    mean = np.stack([expected[kept == c].mean(axis=0) for c in range(8)])[kept]
    own = (expected - mean).reshape(-1, 18, 10, NEURONS).sum(axis=2).ravel()
    seen = (counts - mean).reshape(-1, 18, 10, NEURONS).sum(axis=2).ravel()
    assert own.std() > 0.1 * mean.reshape(-1, 18, 10, NEURONS).sum(axis=2).std()
    slope = float(own @ seen / (own @ own))
    assert 0.8 < slope < 1.2


def test_the_file_marks_heldout_neurons_and_splits_trials_as_nlb_reads_them(recorded):
    _, path, recording = recorded
    assert recording.heldout.sum() == round(HELDOUT_FRACTION * NEURONS) == 7
    assert set(recording.trials.split) == {"train", "val", "test"}
    nwb_interface = pytest.importorskip("nlb_tools.nwb_interface")
    dataset = nwb_interface.NWBDataset(str(path))
    assert dataset.data["heldout_spikes"].shape[1] == 7
    assert dataset.data["spikes"].shape[1] == NEURONS - 7
    heldout_spikes = sum(len(recording.spike_times[u]) for u in np.flatnonzero(recording.heldout))
    assert int(dataset.data["heldout_spikes"].to_numpy(np.float64).sum()) == heldout_spikes


def test_white_noise_latents_have_no_network_in_their_truth(tmp_path):
    out = tmp_path / "null.nwb"
    done = synth("--out", str(out), "--latents", "white-noise", "--trials", "20", "--neurons", "30")
    assert done.exit_code == 0, done.output
    truth = tmp_path / "null.truth.safetensors"
    tensors, metadata = read_safetensors(truth)
    assert not {"W", "h", "x_sp", "x_star", "C", "initial_states"} & set(tensors)
    assert (metadata["latents"], metadata["kind"]) == ("white-noise", "synthetic_truth")
    trial_truth, _ = read_safetensors(tmp_path / "null.trials.safetensors")
    assert trial_truth["trial_rates"].shape == (160, 180, 30)
    with pytest.raises(InvalidNetworkError, match="not a lifrnn network"):
        load_network(truth)
    recording = read_nwb(out, NWBLayout(), ["move_onset_time"])
    assert recording.n_units == 30 and recording.heldout.sum() == 7


def test_synth_nwb_refuses_a_network_that_did_not_converge_unless_allowed(network, tmp_path):
    W, n_excitatory = network
    poor = W.numpy() * (0.9 / spectral_abscissa(W.numpy()))  # kao2021 stops at 0.81
    saved = write_safetensors(
        tmp_path / "poor.safetensors",
        {"W": poor},
        {"kind": "soc", "method": "kao2021", "n_excitatory": str(n_excitatory)},
    )
    out = tmp_path / "poor.nwb"
    args = ["--out", str(out), "--network", str(saved), "--trials", "20", "--neurons", "10"]
    refused = synth(*args)
    assert refused.exit_code == 1
    assert "spectral abscissa 0.900 is above its target 0.81" in said(refused.output)
    assert "--allow-poor" in said(refused.output)
    assert not out.exists()
    allowed = synth(*args, "--allow-poor", "--spikes")
    assert allowed.exit_code == 0, allowed.output
    tensors, metadata = read_safetensors(tmp_path / "poor.truth.safetensors")
    assert "spectral abscissa 0.900" in metadata["poor"]
    assert not {"trial_rates", "initial_states"} & set(tensors)  # a network file, of its size
    trial_truth, trial_meta = read_safetensors(tmp_path / "poor.trials.safetensors")
    assert trial_meta["kind"] == "synthetic_trial_truth"
    assert trial_truth["trial_rates"].shape == (160, 180, 10)
    assert trial_truth["initial_states"].shape == (160, N)


def test_a_stalled_reach_fit_is_named_with_its_r2():
    stalled = generator_problems(reach_r2=[-0.71, -0.1, 0.95])
    assert stalled == ["its reach fit stalled: reach R² -0.71..0.95, below 0.7 in 2 of 3 reaches"]
    assert generator_problems(spectral_abscissa=0.8, target_abscissa=0.81, reach_r2=[0.9]) == []
    unstable = generator_problems(spectral_abscissa=1.2)
    assert unstable == ["the network is unstable: its spectral abscissa 1.200 is not below 1"]
