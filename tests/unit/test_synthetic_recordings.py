"""Synthetic recordings: neurons reading a network fitted to reaches, with a known truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import networks

from lifrnn_core.errors import InvalidNetworkError
from lifrnn_core.synthetic_recordings import (
    BIN_WIDTH,
    LEAD,
    ReachFit,
    SyntheticRecording,
    fit_reaches,
)

N = 60


@pytest.fixture(scope="module")
def network(one_thread: None) -> tuple[torch.Tensor, int]:
    return networks.kao2021(N)


@pytest.fixture(scope="module")
def reaches(network: tuple[torch.Tensor, int]) -> ReachFit:
    return networks.reaches(*network)


def synthesize(network, reaches: ReachFit, seed: int = 1) -> SyntheticRecording:
    return networks.recording(*network, reaches, trials_per_condition=20, neurons=30, seed=seed)


@pytest.fixture(scope="module")
def synthetic(network, reaches) -> SyntheticRecording:
    return synthesize(network, reaches)


def test_the_fitted_network_makes_bell_shaped_reaches_after_a_silent_lead(reaches, synthetic):
    assert reaches.directions_deg == [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]
    assert min(reaches.r2) > 0.7
    speed = np.linalg.norm(synthetic.velocity, axis=-1)  # (conditions, time), 1 ms grid
    peak_time = synthetic.time[speed.argmax(axis=1)]
    assert np.all((peak_time > 0.1) & (peak_time < 0.45))  # the reach takes 0.5 s from onset
    assert np.all(speed[:, synthetic.time < -0.1].max(axis=1) < 0.5 * speed.max(axis=1))
    at_peak = synthetic.velocity[np.arange(8), speed.argmax(axis=1)]
    directions = np.deg2rad(reaches.directions_deg)
    cosine = (at_peak[:, 0] * np.cos(directions) + at_peak[:, 1] * np.sin(directions)) / (
        np.linalg.norm(at_peak, axis=1)
    )
    assert np.all(cosine > 0.8)


def test_the_same_seed_gives_the_same_recording(network, reaches, synthetic):
    again = synthesize(network, reaches, seed=1)
    pairs = zip(synthetic.recording.spike_times, again.recording.spike_times, strict=True)
    for first, second in pairs:
        assert np.array_equal(first, second)
    assert np.array_equal(synthetic.mixing, again.mixing)
    assert np.array_equal(
        synthetic.recording.trials.events["move_onset_time"],
        again.recording.trials.events["move_onset_time"],
        equal_nan=True,
    )
    other = synthesize(network, reaches, seed=2)
    assert not np.array_equal(synthetic.mixing, other.mixing)


def test_neurons_mix_excitatory_rates_sparsely_and_non_negatively(synthetic, network):
    _, n_excitatory = network
    assert synthetic.mixing.shape == (30, n_excitatory)
    assert np.all(synthetic.mixing >= 0)
    inputs = (synthetic.mixing > 0).sum(axis=1)
    assert np.all(inputs == round(0.1 * n_excitatory))


def test_rates_are_plausible_firing_rates(synthetic):
    rates = synthetic.rates  # (conditions, time, neurons)
    assert rates.shape == (8, len(synthetic.time), 30)
    assert rates.min() >= 0
    peaks = rates.max(axis=(0, 1))
    assert np.all((peaks > 5) & (peaks < 100))
    assert np.all(synthetic.rest_rates < peaks)
    assert synthetic.time[0] == pytest.approx(-LEAD)


def test_trials_follow_a_delayed_reach_with_jittered_onsets(synthetic):
    trials = synthetic.recording.trials
    events = trials.events
    true_onset = synthetic.true_move_onset
    assert len(trials) == 160
    assert np.all(trials.start_time < events["target_on_time"])
    assert np.all(events["target_on_time"] + 0.3 <= events["go_cue_time"])
    assert np.all(true_onset - LEAD >= events["target_on_time"])  # preparation before the run
    assert np.all(true_onset + 0.7 < trials.stop_time)
    assert np.array_equal(trials.start_time[1:], trials.stop_time[:-1])
    assert np.all((synthetic.reaction_time >= 0.25) & (synthetic.reaction_time <= 0.4))
    assert synthetic.reaction_time.std() > 0.02  # reaction times vary
    jitter = synthetic.onset_jitter[np.isfinite(synthetic.onset_jitter)]
    assert np.all(np.abs(jitter) <= 0.005) and jitter.std() > 0
    assert np.allclose(
        events["move_onset_time"] - true_onset, synthetic.onset_jitter, equal_nan=True
    )
    counts = np.bincount(synthetic.condition_index, minlength=8)
    assert counts.tolist() == [20] * 8
    assert set(trials.condition) == {f"{c}/0" for c in range(1, 9)}


def test_some_trials_are_failed_or_lack_an_onset_so_exclusion_is_exercised(synthetic):
    trials = synthetic.recording.trials
    missing = np.isnan(trials.events["move_onset_time"])
    assert (~trials.success).sum() == round(0.03 * 160)
    assert missing.sum() == 2  # two from 100 trials on
    assert not np.any(missing & ~trials.success)  # each excluded for one reason
    assert set(trials.split) == {"train", "val", "test"}
    assert (trials.split == "train").mean() == pytest.approx(0.7, abs=0.01)


def test_the_hand_moves_as_the_readout_of_the_free_run_from_x_star(synthetic):
    """The behaviour, cut around each trial's true onset, is the truth's velocity exactly."""
    recording = synthetic.recording
    assert recording.behavior_times[1] - recording.behavior_times[0] == pytest.approx(BIN_WIDTH)
    window = len(synthetic.time)
    for trial in range(0, 160, 17):
        first = round(synthetic.true_move_onset[trial] / BIN_WIDTH) - round(LEAD / BIN_WIDTH)
        cut = recording.behavior[first : first + window]
        assert np.allclose(cut, synthetic.velocity[synthetic.condition_index[trial]], atol=1e-12)


def test_spike_counts_follow_the_rates(synthetic):
    spikes = np.array([len(times) for times in synthetic.recording.spike_times])
    expected = synthetic.expected_spikes
    assert np.all(np.abs(spikes - expected) < 5 * np.sqrt(expected) + 5)
    # trial-averaged counts in 50 ms bins around the true onset follow the true rates
    edges = np.arange(-LEAD, 0.7 + 1e-9, 0.05)
    observed = np.zeros((8, len(edges) - 1, 30))
    for trial, onset in enumerate(synthetic.true_move_onset):
        c = synthetic.condition_index[trial]
        for unit, times in enumerate(synthetic.recording.spike_times):
            observed[c, :, unit] += np.histogram(times - onset, edges)[0]
    observed /= 20 * 0.05  # spikes/s
    binned = synthetic.rates[:, :-1].reshape(8, len(edges) - 1, 50, 30).mean(axis=2)
    assert np.corrcoef(observed.ravel(), binned.ravel())[0, 1] > 0.9
    spike_times = np.concatenate(synthetic.recording.spike_times)
    assert np.all(np.diff(synthetic.recording.spike_times[0]) >= 0)
    assert spike_times.min() >= 0 and spike_times.max() < synthetic.recording.trials.stop_time[-1]


def test_too_many_conditions_for_the_network_are_refused(network):
    W, n_excitatory = network
    with pytest.raises(InvalidNetworkError, match="need more than"):
        fit_reaches(W, n_excitatory, conditions=n_excitatory)
