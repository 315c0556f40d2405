"""Spike trains cut as the Neural Latents Benchmark cuts them: bins on one grid from time 0,
windows aligned to movement onset, held-out neurons and the train / val / test split from the
file or from the seed and the data alone, and a refusal naming what is missing and the minimum
for a recording that cannot be scored (issue 28, points 1 and 10)."""

from __future__ import annotations

import numpy as np
import pytest

from lifrnn_core.recordings import Recording, Trials
from lifrnn_core.spike_trials import (
    NLB_VELOCITY_LAG,
    SpikeTrialsConfig,
    SpikeTrialsError,
    grid_bins,
    spike_trials,
    window_first_bins,
)

TRIAL_LENGTH = 1.2  # seconds between trial starts
ONSET = 0.5  # movement onset, seconds after a trial's start (before the jitter)


def recording(
    n_trials: int = 40,
    n_units: int = 12,
    n_conditions: int = 4,
    split: list[str] | None = None,
    heldout: np.ndarray | None = None,
    behavior: bool = True,
    seed: int = 0,
) -> Recording:
    """A continuous session: Poisson spikes at 20 spikes/s, trials every 1.2 s, onsets jittered on
    a 1 ms clock, conditions in turn, a 1 kHz hand velocity that is a ramp (v = t, in m/s)."""
    rng = np.random.default_rng(seed)
    duration = 0.5 + n_trials * TRIAL_LENGTH + 0.5
    spike_times = [
        np.sort(np.round(rng.uniform(0, duration, rng.poisson(20 * duration)), 4))
        for _ in range(n_units)
    ]
    start = 0.5 + TRIAL_LENGTH * np.arange(n_trials)
    onset = start + ONSET + rng.integers(0, 20, n_trials) / 1000
    times = np.arange(round(duration * 1000)) / 1000
    return Recording(
        spike_times=spike_times,
        trials=Trials(
            start_time=start,
            stop_time=start + TRIAL_LENGTH - 0.01,
            events={"move_onset_time": onset},
            condition=np.array([str(i % n_conditions) for i in range(n_trials)]),
            success=np.ones(n_trials, dtype=bool),
            split=None if split is None else np.array(split),
        ),
        behavior=np.stack([times, -times], axis=1) if behavior else None,
        behavior_times=times if behavior else None,
        heldout=heldout,
    )


def test_bins_are_left_closed_and_spike_times_are_read_to_the_nanosecond():
    # [k bw, (k + 1) bw): a spike on an edge opens the next bin; one a rounding error before it
    # too (NLB rounds spike times to the nanosecond before binning); one a microsecond before
    # an edge stays in the earlier bin.
    times = np.array([0.0, 0.005, 0.005 - 1e-12, 0.005 - 1e-6, 0.0149999, 0.3 * 3])
    assert grid_bins(times, 0.005).tolist() == [0, 1, 1, 0, 2, 180]


def test_a_window_starts_at_the_first_bin_edge_at_or_after_event_plus_offset():
    onsets = np.array([1.000, 1.001, 1.004, 1.005])
    # -250 ms: 0.750 is an edge (bin 150); 0.751 and 0.754 start at 0.755 (bin 151).
    assert window_first_bins(onsets, -0.25, 0.005).tolist() == [150, 151, 151, 151]


def test_counts_are_each_trials_histogram_of_its_window_and_forward_bins():
    data = recording()
    config = SpikeTrialsConfig()
    trials = spike_trials(data, config)
    units = np.concatenate([trials.heldin_units, trials.heldout_units])
    window = np.concatenate([trials.heldin, trials.heldout], axis=2)
    forward = np.concatenate([trials.heldin_forward, trials.heldout_forward], axis=2)
    assert window.shape == (40, 140, 12) and forward.shape == (40, 40, 12)
    onset = data.trials.events["move_onset_time"][trials.trial_index]
    for row, event in enumerate(onset):
        first = np.ceil(np.round((event - 0.25) / 0.005, 6))
        # Edges as decimals, like the spike times (0.1 ms clock); one extra edge because
        # np.histogram closes its last bin.
        edges = np.round((first + np.arange(182)) * 0.005, 9)
        for column, unit in enumerate(units):
            expected, _ = np.histogram(data.spike_times[unit], edges)
            got = np.concatenate([window[row, :, column], forward[row, :, column]])
            assert np.array_equal(got, expected[:-1])
    assert window.sum() > 1000


def test_behaviour_is_sampled_at_each_bins_start_plus_the_lag():
    # The velocity is the ramp v(t) = t: a zero-phase low-pass filter leaves it unchanged, so
    # each bin holds exactly its start time plus the lag.
    config = SpikeTrialsConfig(behavior_lag=NLB_VELOCITY_LAG)
    data = recording()
    trials = spike_trials(data, config)
    onset = data.trials.events["move_onset_time"][trials.trial_index]
    first = np.ceil(np.round((onset - 0.25 + 0.1) * 200, 6))  # onsets on a 1 ms clock
    expected = (first[:, None] + np.arange(140)) * 0.005
    assert trials.behavior is not None and trials.behavior_lag == NLB_VELOCITY_LAG
    np.testing.assert_allclose(trials.behavior[:, :, 0], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(trials.behavior[:, :, 1], -expected, rtol=0, atol=1e-9)


def test_a_recording_without_behaviour_is_cut_without_it():
    assert spike_trials(recording(behavior=False), SpikeTrialsConfig()).behavior is None


def test_unusable_trials_are_left_out_and_counted_once_each():
    data = recording(split=["train", "val", "test", "none"] * 10)
    onset = data.trials.events["move_onset_time"]
    onset[0] = np.nan  # missing_event
    data.trials.success[[1, 2]] = False  # failed (2 is also 'test': counted once)
    onset[38] = data.trials.stop_time[39]  # forward bins past the recording
    trials = spike_trials(data, SpikeTrialsConfig())
    assert trials.excluded_trials == {
        "missing_event": 1,
        "failed": 2,
        "unused_split": 10,
        "window_outside_recording": 1,
        "test_without_heldout": 0,
    }
    assert trials.n_trials == 26 and not np.isin([0, 1, 2, 3, 38], trials.trial_index).any()


def test_the_files_split_is_kept_when_it_has_train_val_and_test():
    labels = (["train"] * 6 + ["val"] * 2 + ["test"] * 2) * 4
    trials = spike_trials(recording(split=labels), SpikeTrialsConfig(seed=3))
    assert trials.split_rule == "file" and trials.split_from_file
    assert trials.split.tolist() == labels


def test_a_file_with_train_and_val_only_is_scored_on_its_val_trials():
    # NLB's train files: their test trials live in another file, without held-out neurons.
    labels = (["train"] * 8 + ["val"] * 2) * 4
    trials = spike_trials(recording(split=labels), SpikeTrialsConfig())
    assert trials.split_rule == "file_val_as_test"
    file_labels = np.array(labels)[trials.trial_index]
    assert np.all(trials.split[file_labels == "val"] == "test")
    drawn = trials.split[file_labels == "train"]
    assert set(drawn) == {"train", "val"} and np.count_nonzero(drawn == "val") == round(0.2 * 32)


def test_a_file_without_val_trials_gets_them_drawn_from_its_train_trials():
    labels = (["train"] * 8 + ["test"] * 2) * 4
    trials = spike_trials(recording(split=labels), SpikeTrialsConfig())
    assert trials.split_rule == "file_val_drawn"
    file_labels = np.array(labels)[trials.trial_index]
    assert np.array_equal(trials.split == "test", file_labels == "test")
    assert np.count_nonzero(trials.split == "val") == round(0.2 * 32)


def test_test_trials_on_which_the_heldout_neurons_are_silent_are_not_scored():
    labels = (["train"] * 6 + ["val"] * 2 + ["test"] * 2) * 4
    data = recording(split=labels, heldout=np.arange(12) >= 9)
    test_windows = [
        (onset - 0.3, onset + 0.7)
        for onset, label in zip(data.trials.events["move_onset_time"], labels, strict=True)
        if label == "test"
    ]
    for unit in (9, 10, 11):  # the file withholds the held-out neurons on its test trials
        times = data.spike_times[unit]
        inside = np.zeros(times.size, dtype=bool)
        for begin, end in test_windows:
            inside |= (times >= begin) & (times < end)
        data.spike_times[unit] = times[~inside]
    trials = spike_trials(data, SpikeTrialsConfig())
    assert trials.excluded_trials["test_without_heldout"] == 8
    assert trials.split_rule == "file_val_as_test" and trials.heldout_from_file
    assert np.all(trials.split[np.array(labels)[trials.trial_index] == "val"] == "test")


def test_a_drawn_split_covers_every_condition_and_depends_on_the_seed_and_data_only():
    config = SpikeTrialsConfig(seed=7)
    first = spike_trials(recording(n_units=12), config)
    assert first.split_rule == "drawn" and not first.split_from_file
    counts = {name: int(np.count_nonzero(first.split == name)) for name in ("train", "val", "test")}
    assert counts == {"train": 26, "val": 6, "test": 8}  # 20 % of 40 test, 20 % of 32 val
    for name in ("train", "val", "test"):
        assert set(first.condition[first.split == name]) == {"0", "1", "2", "3"}
    # Other neurons held out, other spikes: the same trials in each split.
    other = spike_trials(recording(n_units=20, seed=1), config, heldout_units=[0, 5, 6])
    assert other.split.tolist() == first.split.tolist()
    reseeded = spike_trials(recording(n_units=12), SpikeTrialsConfig(seed=8))
    assert reseeded.split.tolist() != first.split.tolist()


def test_heldout_neurons_come_from_the_argument_then_the_file_then_the_seed():
    flags = np.zeros(12, dtype=bool)
    flags[[2, 7, 11]] = True
    from_file = spike_trials(recording(heldout=flags), SpikeTrialsConfig())
    assert from_file.heldout_units.tolist() == [2, 7, 11] and from_file.heldout_from_file
    assert from_file.heldin_units.tolist() == [0, 1, 3, 4, 5, 6, 8, 9, 10]
    chosen = spike_trials(recording(heldout=flags), SpikeTrialsConfig(), heldout_units=[4, 0])
    assert chosen.heldout_units.tolist() == [0, 4] and not chosen.heldout_from_file
    drawn = spike_trials(recording(), SpikeTrialsConfig(heldout_fraction=0.25, seed=1))
    again = spike_trials(recording(seed=5), SpikeTrialsConfig(heldout_fraction=0.25, seed=1))
    assert drawn.heldout_units.size == 3 and drawn.heldout.shape[2] == 3
    assert drawn.heldout_units.tolist() == again.heldout_units.tolist()


def refusal(data: Recording, config: SpikeTrialsConfig | None = None) -> SpikeTrialsError:
    with pytest.raises(SpikeTrialsError) as caught:
        spike_trials(data, config or SpikeTrialsConfig())
    return caught.value


def test_a_recording_without_spikes_is_refused_naming_them():
    data = recording()
    silent = Recording(spike_times=[np.array([])] * 3, trials=data.trials)
    error = refusal(silent)
    assert (
        error.missing == "spikes" and "no spikes" in str(error) and "at least 3 units" in str(error)
    )


def test_a_recording_without_trials_is_refused_naming_them():
    empty = Trials(
        start_time=np.array([]),
        stop_time=np.array([]),
        events={"move_onset_time": np.array([])},
        condition=np.array([]),
        success=np.array([], dtype=bool),
    )
    error = refusal(Recording(spike_times=recording().spike_times, trials=empty))
    assert error.missing == "trials" and error.minimum == 6 and "no trials" in str(error)


def test_a_recording_without_the_alignment_event_is_refused_naming_it():
    data = recording()
    trials = Trials(
        start_time=data.trials.start_time,
        stop_time=data.trials.stop_time,
        events={"go_cue_time": data.trials.start_time + 0.3},
        condition=data.trials.condition,
        success=data.trials.success,
    )
    error = refusal(Recording(spike_times=data.spike_times, trials=trials))
    assert error.missing == "move_onset_time"
    assert "'move_onset_time' (the alignment event)" in str(error) and "go_cue_time" in str(error)


def test_too_few_heldout_neurons_are_refused_with_the_minimum():
    error = refusal(recording(n_units=4), SpikeTrialsConfig(heldout_fraction=0.25, min_heldout=2))
    assert error.missing == "held-out neurons" and error.minimum == 2
    assert "1 held-out neuron of 4" in str(error) and "min_heldout = 2" in str(error)


def test_too_few_trials_in_a_split_are_refused_with_the_minimum():
    error = refusal(recording(n_trials=12), SpikeTrialsConfig(min_trials=3))
    assert error.minimum == 3 and error.missing == "val trials"
    assert "2 usable val trials" in str(error) and "min_trials = 3" in str(error)
