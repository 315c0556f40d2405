"""NLB'21's scores (lifrnn_core/nlb_metrics/) against nlb-tools' own evaluation functions.

nlb-tools (the Makefile installs it with --no-deps) is the benchmark's reference: on the same
seeded arrays every score must agree with it to 1e-9. Property tests check what the scores mean.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nlb_tools import evaluation

from lifrnn_core.nlb_metrics import (
    JoinedRates,
    bits_per_spike,
    co_bps,
    condition_psths,
    fp_bps,
    psth_r2,
    psth_reliability,
    score_spike_trials,
    velocity_r2,
)
from lifrnn_core.spike_trials import SpikeTrials

AGREEMENT = 1e-9


def poisson_trials(seed: int, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(true rates, counts): smooth positive rates in spikes per bin and Poisson counts."""
    rng = np.random.default_rng(seed)
    trials, time, neurons = shape
    phase = rng.uniform(0, 2 * np.pi, size=(trials, 1, neurons))
    base = rng.uniform(0.05, 0.4, size=(1, 1, neurons))
    t = np.arange(time)[None, :, None]
    rates = base * (1 + 0.8 * np.sin(2 * np.pi * t / time + phase))
    return rates, rng.poisson(rates).astype(np.float64)


def test_bits_per_spike_matches_nlb_tools_with_masked_bins_and_zero_rates():
    rates, spikes = poisson_trials(0, (12, 30, 8))
    rng = np.random.default_rng(1)
    predicted = rates * rng.uniform(0.7, 1.3, size=rates.shape)
    predicted[0, 0, 0] = 0.0  # a zero rate: both read it as 1e-9 spikes per bin
    spikes[..., 7] = 0.0  # a silent neuron: its null rate is 0, read as 1e-9 too
    spikes[2, :5, :] = np.nan  # bins out of the score, whose rates may be anything
    predicted[2, :5, :] = np.nan

    ours = bits_per_spike(predicted, spikes)
    theirs = evaluation.bits_per_spike(predicted.copy(), spikes.copy())

    assert abs(ours - theirs) < AGREEMENT
    assert np.isnan(predicted[2, 0, 0])  # our function leaves its inputs alone


def test_co_bps_and_fp_bps_match_nlb_tools():
    rates, spikes = poisson_trials(2, (10, 40, 12))
    heldout_rates, heldout_spikes = rates[:, :, 9:] * 0.9, spikes[:, :, 9:]
    forward_rates, forward_spikes = poisson_trials(3, (10, 8, 12))
    forward_rates = forward_rates + 0.02
    heldin_fw, heldout_fw = forward_rates[..., :9], forward_rates[..., 9:]
    heldin_fw_spikes, heldout_fw_spikes = forward_spikes[..., :9], forward_spikes[..., 9:]

    theirs_fp = evaluation.bits_per_spike(
        np.dstack([heldin_fw, heldout_fw]), np.dstack([heldin_fw_spikes, heldout_fw_spikes])
    )

    assert (
        abs(
            co_bps(heldout_rates, heldout_spikes)
            - evaluation.bits_per_spike(heldout_rates.copy(), heldout_spikes)
        )
        < AGREEMENT
    )
    assert abs(fp_bps(forward_rates, forward_spikes) - theirs_fp) < AGREEMENT


def test_the_mean_rate_itself_scores_zero_bits_per_spike():
    _, spikes = poisson_trials(4, (6, 20, 5))
    mean_rate = np.broadcast_to(spikes.mean(axis=(0, 1), keepdims=True), spikes.shape)

    assert bits_per_spike(mean_rate, spikes) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), mean_count=st.floats(0.05, 2.0))
def test_the_true_poisson_means_beat_each_neurons_mean_rate(seed, mean_count):
    rates, spikes = poisson_trials(seed, (40, 50, 4))
    rates = rates * mean_count / rates.mean()
    spikes = np.random.default_rng(seed).poisson(rates).astype(np.float64)
    mean_rate = np.broadcast_to(spikes.mean(axis=(0, 1), keepdims=True), spikes.shape)

    assert bits_per_spike(rates, spikes) > bits_per_spike(mean_rate, spikes)


def lagged_velocity(
    rng: np.random.Generator, readout: np.ndarray, trials: int, time: int, lag: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rates on the window and hand velocity over the window plus lag bins, driven by the rates."""
    rates = rng.gamma(2.0, 0.1, size=(trials, time + lag, len(readout)))
    velocity = np.zeros((trials, time + lag, 2))
    velocity[:, lag:] = rates[:, :time] @ readout + 0.3 * rng.normal(size=(trials, time, 2))
    return rates[:, :time], velocity


def test_velocity_r2_matches_nlb_tools_decoder_with_its_lag_and_missing_velocity():
    lag, rng = 5, np.random.default_rng(5)
    readout = rng.normal(size=(10, 2))
    train_rates, train_velocity_long = lagged_velocity(rng, readout, 24, 30, lag)
    eval_rates, eval_velocity_long = lagged_velocity(rng, readout, 10, 30, lag)
    train_velocity_long[3, 10:14] = np.nan  # nlb-tools drops these samples
    eval_velocity_long[1, 20] = np.nan
    # NLB's behaviour tensor is cut from the window shifted by the lag; on the window's bins
    # that have a velocity lag bins later, that is velocity[:, lag:] against rates[:, :-lag].
    theirs = evaluation.velocity_decoding(
        train_rates[:, :-lag],
        train_velocity_long[:, lag:30],
        np.full((24, 1), True),
        eval_rates[:, :-lag],
        eval_velocity_long[:, lag:30],
        np.full((10, 1), True),
    )

    ours = velocity_r2(
        train_rates,
        train_velocity_long[:, :30],
        eval_rates,
        eval_velocity_long[:, :30],
        lag_bins=lag,
    )

    assert abs(ours - theirs) < AGREEMENT
    assert ours > 0.5  # the velocity follows the rates: the lag is applied the right way round


def test_velocity_r2_reads_neuron_groups_of_some_trials_as_the_joined_array_gives():
    """The jobs decode from held-in and held-out rates side by side without joining them (a
    :class:`JoinedRates` view of the training trials): the same score to the last bit."""
    lag, rng = 4, np.random.default_rng(7)
    readout = rng.normal(size=(10, 2))
    rates, velocity = lagged_velocity(rng, readout, 30, 25, lag)
    velocity = velocity[:, :25].copy()
    velocity[2, 5:9] = np.nan
    train = np.array([0, 2, 3, 5, 8, 9, 11, 12, 14, 17, 20, 21, 24, 27])
    held_in, held_out = rates[..., :6].astype(np.float32), rates[..., 6:].astype(np.float32)
    joined = np.concatenate([held_in, held_out], axis=-1)
    eval_rates, eval_velocity = joined[[1, 4, 6]], velocity[[1, 4, 6]]

    view = JoinedRates((held_in, held_out), train)
    assert view.shape == joined[train].shape
    assert velocity_r2(
        view, velocity[train], eval_rates, eval_velocity, lag_bins=lag
    ) == velocity_r2(joined[train], velocity[train], eval_rates, eval_velocity, lag_bins=lag)


def test_psth_r2_matches_nlb_tools_with_a_shorter_condition_and_one_without_trials():
    rng = np.random.default_rng(7)
    psths = rng.gamma(2.0, 0.1, size=(4, 25, 6))
    psths[1, 20:] = np.nan  # condition 1 is shorter
    conditions = np.array(["a", "b", "a", "c", "b", "a", "c"])  # no trial of condition "d"
    labels = ["a", "b", "c", "d"]
    rates = psths[[labels.index(c) for c in conditions]] + rng.normal(0, 0.05, (7, 25, 6))
    rates = np.nan_to_num(rates, nan=0.0)
    eval_cond_idx = [np.flatnonzero(conditions == label) for label in labels]

    ours = psth_r2(rates, conditions, psths, labels)
    theirs = evaluation.eval_psth(psths, rates, eval_cond_idx)

    assert abs(ours - theirs) < AGREEMENT


def spike_trials(seed: int, with_behavior: bool) -> tuple[SpikeTrials, np.ndarray]:
    """A small SpikeTrials from known rates: (trials, the true rates of its 10 neurons)."""
    rates, counts = poisson_trials(seed, (30, 40, 10))
    forward_rates, forward_counts = poisson_trials(seed + 1, (30, 4, 10))
    rng = np.random.default_rng(seed)
    return SpikeTrials(
        heldin=counts[..., :7],
        heldout=counts[..., 7:],
        heldin_forward=forward_counts[..., :7],
        heldout_forward=forward_counts[..., 7:],
        behavior=rng.normal(size=(30, 40, 2)) if with_behavior else None,
        condition=np.array([str(i % 3) for i in range(30)]),
        split=np.array(["train"] * 18 + ["val"] * 6 + ["test"] * 6),
        time=np.arange(40) * 0.005 - 0.05,
        bin_width=0.005,
        heldin_units=np.arange(7),
        heldout_units=np.arange(7, 10),
        trial_index=np.arange(30),
    ), np.concatenate([rates, forward_rates], axis=1)


def test_spike_trials_are_scored_on_their_test_trials_and_say_what_is_missing():
    trials, true_rates = spike_trials(8, with_behavior=False)
    window, forward = true_rates[:, :40], true_rates[:, 40:]
    test = trials.mask("test")

    scores = score_spike_trials(
        trials, window[..., :7], window[..., 7:], forward[..., :7], forward[..., 7:]
    )

    assert scores.co_bps == bits_per_spike(window[test][..., 7:], trials.heldout[test])
    assert scores.fp_bps is not None and scores.psth_r2 is not None
    assert scores.vel_r2 is None
    assert any(note.startswith("vel R2 left out") for note in scores.as_dict()["notes"])


def test_rates_equal_to_the_data_psths_score_psth_r2_one():
    trials, _ = spike_trials(9, with_behavior=True)
    spikes = np.concatenate([trials.heldin, trials.heldout], axis=-1)
    psths, labels = condition_psths(spikes, trials.condition, trials.bin_width)
    rates = psths[[labels.index(c) for c in trials.condition]]

    scores = score_spike_trials(trials, rates[..., :7], rates[..., 7:])

    assert scores.psth_r2 == pytest.approx(1.0, abs=1e-12)
    assert scores.vel_r2 is not None and scores.fp_bps is None


def test_psth_reliability_is_one_without_trial_noise_and_near_zero_for_noise_alone():
    """The noise ceiling: identical trials per condition are fully reliable; trials of pure
    Poisson noise around one flat rate share no PSTH structure between their halves."""
    rng = np.random.default_rng(0)
    conditions = np.repeat(np.arange(6), 10).astype(str)
    signal = rng.poisson(3.0, size=(6, 40, 5)).astype(float)
    repeated = signal[np.repeat(np.arange(6), 10)]
    assert psth_reliability(repeated, conditions, 0.005, np.random.default_rng(1)) == (
        pytest.approx(1.0)
    )
    noise = rng.poisson(0.5, size=(60, 40, 5)).astype(float)
    assert psth_reliability(noise, conditions, 0.005, np.random.default_rng(1)) < 0.3
