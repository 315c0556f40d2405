"""Preprocessing of recordings: binning, smoothing, alignment, averaging and normalisation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifrnn_core.recordings import (
    PreprocessConfig,
    Recording,
    Trials,
    behavior_average,
    bin_spikes,
    condition_average,
    condition_averages_from_rates,
    gaussian_smooth,
    preprocess,
    principal_components,
    soft_normalise,
    variance_captured,
)

DT = 2.0**-6
"""15.625 ms: event times, window edges and spike times below are exact binary fractions, so
every bin edge is computed without rounding and spikes can sit exactly on an edge."""


def make_recording(
    spike_times: list[list[float]],
    events: list[float],
    conditions: list[str],
    success: list[bool] | None = None,
) -> Recording:
    """Trials of 2 s around each event (one event per trial, ``move_onset_time``)."""
    event = np.array(events, dtype=float)
    centre = np.where(np.isnan(event), np.arange(len(events)) * 4.0 + 2.0, event)
    trials = Trials(
        start_time=centre - 1.0,
        stop_time=centre + 1.0,
        events={"move_onset_time": event},
        condition=np.array(conditions),
        success=np.ones(len(events), bool) if success is None else np.array(success),
    )
    return Recording(spike_times=[np.array(times) for times in spike_times], trials=trials)


def regular_spikes(stop: float) -> list[float]:
    """One spike in the middle of every DT bin from 0 to stop: 64 spikes/s."""
    return list((np.arange(round(stop / DT)) + 0.5) * DT)


# --- binning ---------------------------------------------------------------------------------


def test_bin_spikes_puts_each_spike_in_the_bin_it_falls_in():
    unit_0 = np.array([-0.1, 0.0, 0.3, 0.5, 0.6, 0.99, 1.0, 10.75])
    unit_1 = np.array([10.25, 10.25])
    counts = bin_spikes([unit_0, unit_1], starts=np.array([0.0, 10.0]), n_bins=4, dt=0.25)

    assert counts.shape == (2, 4, 2)
    # -0.1 is before the window and 1.0 is the end of the last bin: both ignored. 0.0 and 0.5
    # sit exactly on bin starts and belong to the bins they open.
    np.testing.assert_array_equal(counts[0, :, 0], [1, 1, 2, 1])
    np.testing.assert_array_equal(counts[1, :, 0], [0, 0, 0, 1])
    np.testing.assert_array_equal(counts[:, :, 1], [[0, 0, 0, 0], [0, 2, 0, 0]])


def test_bin_spikes_counts_a_spike_in_every_window_that_holds_it():
    counts = bin_spikes([np.array([0.55])], starts=np.array([0.0, 0.5]), n_bins=2, dt=0.5)
    np.testing.assert_array_equal(counts[:, :, 0], [[0, 1], [1, 0]])


@settings(max_examples=60, deadline=None)
@given(
    spikes=st.lists(st.floats(0.0, 10.0), max_size=60),
    starts=st.lists(st.floats(0.0, 9.0), min_size=1, max_size=5),
    n_bins=st.integers(1, 12),
    dt=st.sampled_from([0.001, 0.01, 0.1, 0.25, 0.3]),
)
def test_bin_spikes_counts_the_spikes_between_consecutive_edges(spikes, starts, n_bins, dt):
    spike_times = np.sort(np.array(spikes))
    starts = np.array(starts)
    counts = bin_spikes([spike_times], starts, n_bins, dt)[:, :, 0]

    edges = starts[:, None] + np.arange(n_bins + 1) * dt
    after_left = spike_times[None, None, :] >= edges[:, :-1, None]
    before_right = spike_times[None, None, :] < edges[:, 1:, None]
    np.testing.assert_array_equal(counts, np.sum(after_left & before_right, axis=-1))
    in_window = (spike_times >= edges[:, :1]) & (spike_times < edges[:, -1:])
    np.testing.assert_array_equal(counts.sum(axis=1), in_window.sum(axis=1))


# --- smoothing -------------------------------------------------------------------------------


def test_smoothing_a_single_spike_keeps_its_area():
    dt = 0.001
    rate = np.zeros((1, 301, 1))
    rate[0, 150, 0] = 1 / dt
    smoothed = gaussian_smooth(rate, sigma=0.02, dt=dt)

    assert np.sum(smoothed) * dt == pytest.approx(1.0, rel=1e-12)
    assert np.argmax(smoothed[0, :, 0]) == 150
    # Peak of a unit-area Gaussian of sd 20 ms: 1 / (sqrt(2 pi) 0.02 s).
    assert smoothed[0, 150, 0] == pytest.approx(1 / (np.sqrt(2 * np.pi) * 0.02), rel=1e-3)
    np.testing.assert_allclose(smoothed[0, 100:150, 0], smoothed[0, 200:150:-1, 0], rtol=1e-12)


def test_smoothing_with_sigma_zero_is_the_identity():
    rate = np.arange(12.0).reshape(2, 3, 2)
    smoothed = gaussian_smooth(rate, sigma=0.0, dt=0.01)
    np.testing.assert_array_equal(smoothed, rate)
    assert smoothed is not rate


def test_preprocess_smooths_with_spikes_just_outside_the_window():
    # A burst 30 ms before the window: the padded window lets its smoothed tail reach in, as it
    # would for an endless recording, instead of mirroring the window's empty edge.
    burst = [0.7205, 0.7215, 0.7225]
    recording = make_recording([burst], events=[1.0], conditions=["1"])
    config = PreprocessConfig(dt=0.001, sigma=0.02, window=(-0.25, 0.45), min_rate=0.0)
    averages = preprocess(recording, config)

    long_counts = bin_spikes([np.array(burst)], np.array([0.25]), n_bins=1500, dt=0.001)
    long_rates = gaussian_smooth(long_counts / 0.001, sigma=0.02, dt=0.001)
    np.testing.assert_allclose(averages.rates[0, :, 0], long_rates[0, 500:1200, 0], atol=1e-9)
    assert averages.rates[0, 0, 0] > 1.0


# --- alignment and trial exclusion -----------------------------------------------------------


def test_trials_are_aligned_on_their_event():
    events = [1.5, 3.25, 7.0]
    recording = make_recording(
        [[event + 0.125 for event in events]], events=events, conditions=["1", "1", "1"]
    )
    config = PreprocessConfig(dt=DT, sigma=0.0, window=(-0.25, 0.5), min_rate=0.0)
    averages = preprocess(recording, config)

    assert averages.rates.shape == (1, 48, 1)
    np.testing.assert_array_equal(averages.time, -0.25 + np.arange(48) * DT)
    expected = np.zeros(48)
    expected[averages.time == 0.125] = 1 / DT  # one spike in that bin in each of the 3 trials
    np.testing.assert_array_equal(averages.rates[0, :, 0], expected)
    np.testing.assert_array_equal(averages.trial_counts, [3])


def test_excluded_trials_are_counted_under_their_first_reason():
    # Trial i runs from 2i to 2i + 2 s: the table spans [0, 16] s.
    trials = Trials(
        start_time=np.arange(8) * 2.0,
        stop_time=np.arange(8) * 2.0 + 2.0,
        events={"move_onset_time": np.array([1.0, 3.0, np.nan, 7.0, np.nan, 11.0, 13.0, 15.9])},
        condition=np.array(["1", "1", "1", "1", "2", "2", "1", "1"]),
        success=np.array([True, True, True, False, False, True, True, True]),
    )
    recording = Recording(spike_times=[np.array(regular_spikes(16.0))], trials=trials)
    averages = preprocess(recording, PreprocessConfig(dt=0.01, min_trials=2))

    assert averages.excluded_trials == {
        "missing_event": 2,  # trials 2 and 4 (4 also failed: counted once, here)
        "failed": 1,  # trial 3
        "window_outside_recording": 1,  # trial 7: its window ends at 16.35 s
        "too_few_trials_in_condition": 1,  # trial 5, alone in condition "2"
    }
    assert averages.conditions == ["1"]
    np.testing.assert_array_equal(averages.trial_counts, [3])


def test_preprocess_names_a_missing_event():
    recording = make_recording([[0.5]], events=[1.0], conditions=["1"])
    with pytest.raises(ValueError, match="no event 'go_cue_time'"):
        preprocess(recording, PreprocessConfig(dt=0.01, align_event="go_cue_time"))


def test_preprocess_says_when_no_trial_is_usable():
    recording = make_recording([[0.5]], events=[np.nan, np.nan], conditions=["1", "1"])
    with pytest.raises(ValueError, match="no usable trial"):
        preprocess(recording, PreprocessConfig(dt=0.01))


# --- averaging, normalisation, units ---------------------------------------------------------


def test_condition_average_of_hand_computed_trials():
    x = np.array([[1.0, 2.0], [3.0, 6.0], [10.0, 10.0]])
    averages, labels, counts = condition_average(x, np.array(["10", "2", "10"]))

    assert labels == ["2", "10"]  # natural order: numbers compared as numbers
    np.testing.assert_array_equal(averages, [[3.0, 6.0], [5.5, 6.0]])
    np.testing.assert_array_equal(counts, [1, 2])


def test_conditions_sort_in_natural_order():
    labels = ["10/1", "2/10", "2/1", "2/2", "a"]
    _, ordered, _ = condition_average(np.zeros(5), np.array(labels))
    assert ordered == ["2/1", "2/2", "2/10", "10/1", "a"]


def test_soft_normalise_divides_by_range_plus_soft():
    rates = np.array(
        [
            [[0.0, 3.0], [10.0, 3.0]],
            [[20.0, 3.0], [5.0, 3.0]],
        ]
    )  # (2 conditions, 2 times, 2 neurons); neuron 1 is constant
    normalised, scale = soft_normalise(rates, soft=5.0)

    np.testing.assert_array_equal(scale, [25.0, 5.0])
    np.testing.assert_allclose(normalised[:, :, 0], [[0.0, 0.4], [0.8, 0.2]])
    np.testing.assert_allclose(normalised[:, :, 1], 0.6)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 500.0, allow_subnormal=False), min_size=12, max_size=12),
    soft=st.floats(0.01, 20.0),
)
def test_soft_normalised_neurons_span_less_than_one(values, soft):
    rates = np.array(values).reshape(2, 3, 2)
    normalised, scale = soft_normalise(rates, soft)
    spans = np.ptp(normalised, axis=(0, 1))
    assert np.all((spans >= 0) & (spans < 1))
    np.testing.assert_allclose(normalised * scale, rates, atol=1e-12)


def test_units_below_the_rate_floor_are_dropped_and_counted():
    recording = make_recording(
        [regular_spikes(10.0), [], regular_spikes(10.0)],
        events=[2.0, 6.0],
        conditions=["1", "2"],
    )
    config = PreprocessConfig(dt=DT, window=(-0.25, 0.5), min_rate=1.0)
    averages = preprocess(recording, config)

    np.testing.assert_array_equal(averages.units, [0, 2])
    assert averages.dropped_units == 1
    assert averages.rates.shape == (2, 48, 2)
    np.testing.assert_allclose(averages.rates, 1 / DT, rtol=1e-9)


def test_preprocess_says_when_no_unit_reaches_the_floor():
    recording = make_recording([[50.0]], events=[2.0], conditions=["1"])
    with pytest.raises(ValueError, match=r"no unit reaches min_rate 1\.0 spikes/s"):
        preprocess(recording, PreprocessConfig(dt=0.01))


# --- behaviour -------------------------------------------------------------------------------


def test_behavior_is_sampled_at_bin_centres_and_averaged():
    behavior_times = np.array([0.0, 1.0, 2.0, 3.0])
    behavior = np.stack([10 * behavior_times, behavior_times**2], axis=1)
    averages, labels = behavior_average(
        behavior,
        behavior_times,
        event_times=np.array([1.0, 2.0]),
        time=np.array([0.0, 0.5]),
        dt=0.5,
        conditions=np.array(["1", "1"]),
    )

    # Bin centres: trial 0 at 1.25 s and 1.75 s, trial 1 at 2.25 s and 2.75 s. Channel 1 is
    # interpolated linearly between the samples t² = 1, 4, 9.
    assert labels == ["1"]
    np.testing.assert_allclose(averages[0, :, 0], [(12.5 + 22.5) / 2, (17.5 + 27.5) / 2])
    np.testing.assert_allclose(averages[0, :, 1], [(1.75 + 5.25) / 2, (3.25 + 7.75) / 2])


def test_preprocess_averages_behavior_over_the_same_trials():
    recording = make_recording(
        [regular_spikes(10.0)], events=[2.0, 6.0, 4.0], conditions=["a", "b", "a"]
    )
    times = np.arange(0.0, 10.0, 0.001)
    recording = Recording(
        spike_times=recording.spike_times,
        trials=recording.trials,
        behavior=np.stack([times, -times], axis=1),
        behavior_times=times,
    )
    averages = preprocess(recording, PreprocessConfig(dt=DT, window=(-0.25, 0.5)))

    assert averages.behavior is not None
    assert averages.behavior.shape == (2, 48, 2)
    # Condition "a" averages the trials at 2 s and 4 s: the mean is 3 s + the bin centre.
    np.testing.assert_allclose(averages.behavior[0, :, 0], 3.0 + averages.time + DT / 2)


# --- principal components and already-averaged rates -----------------------------------------


def test_rank_two_data_is_captured_by_two_components():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 10, 2)) @ rng.standard_normal((2, 7)) + 3.0
    scores, components, mean, ratio = principal_components(x, k=2)

    assert scores.shape == (4, 10, 2)
    assert ratio.sum() == pytest.approx(1.0)
    assert variance_captured(x, k=2) == pytest.approx(1.0)
    np.testing.assert_allclose(components.T @ components, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(scores @ components.T + mean, x, atol=1e-10)


def test_variance_captured_by_fewer_components_than_the_rank_is_less_than_one():
    x = np.random.default_rng(1).standard_normal((3, 20, 5))
    assert 0.2 < variance_captured(x, k=1) < 1.0


def test_rates_already_averaged_are_wrapped_with_time_from_zero():
    rates = np.random.default_rng(2).uniform(0.0, 40.0, size=(3, 5, 4))
    averages = condition_averages_from_rates(rates, dt=0.01)

    np.testing.assert_allclose(averages.time, [0.0, 0.01, 0.02, 0.03, 0.04])
    assert averages.conditions == ["0", "1", "2"]
    np.testing.assert_array_equal(averages.units, [0, 1, 2, 3])
    np.testing.assert_allclose(averages.scale, np.ptp(rates, axis=(0, 1)) + 5.0)
    np.testing.assert_allclose(averages.normalised, rates / averages.scale)


def test_principal_component_scores_replace_neurons_when_asked():
    rates = np.random.default_rng(3).uniform(0.0, 40.0, size=(3, 5, 4))
    averages = condition_averages_from_rates(rates, dt=0.01, n_pcs=4)

    assert averages.normalised.shape == (3, 5, 4)
    assert averages.components is not None and averages.component_mean is not None
    reconstructed = averages.normalised @ averages.components.T + averages.component_mean
    np.testing.assert_allclose(reconstructed, rates / averages.scale, atol=1e-10)
    assert averages.rates.shape == (3, 5, 4)


def test_rates_must_be_conditions_by_time_by_neurons():
    with pytest.raises(ValueError, match="rates must be"):
        condition_averages_from_rates(np.zeros((5, 4)), dt=0.01)


# --- configuration ---------------------------------------------------------------------------


def test_window_of_config_sets_the_number_of_bins():
    config = PreprocessConfig(dt=0.001)
    assert config.n_time == 700
    assert config.time[0] == pytest.approx(-0.25)


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"dt": 0.0}, "dt"),
        ({"dt": 0.01, "sigma": -0.01}, "sigma"),
        ({"dt": 0.01, "window": (0.2, 0.1)}, "window"),
        ({"dt": 0.01, "window": (0.0, 0.001)}, "window"),
        ({"dt": 0.01, "soft_normalisation": -1.0}, "soft_normalisation"),
        ({"dt": 0.01, "min_rate": -1.0}, "min_rate"),
        ({"dt": 0.01, "n_pcs": 0}, "n_pcs"),
        ({"dt": 0.01, "min_trials": 0}, "min_trials"),
        ({"dt": 0.01, "align_event": ""}, "align_event"),
    ],
)
def test_bad_config_names_the_parameter(arguments, parameter):
    with pytest.raises(ValueError, match=parameter):
        PreprocessConfig(**arguments)
