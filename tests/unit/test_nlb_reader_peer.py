"""lifrnn reads an NWB file in the DANDI MC_Maze layout as nlb-tools, the Neural Latents
Benchmark's own reader, does: the same held-in, held-out and forward-prediction counts, the same
resampled hand velocity (issue 28, point 1).

nlb-tools pins pandas<=1.3.4 and is installed without its dependencies. On pandas 3 its
``NWBDataset`` loads a file and ``make_train_input_tensors`` works, but ``NWBDataset.resample``
fails: it calls ``np.nan_to_num(arr, copy=False)`` on ``DataFrame.to_numpy()``, which is
read-only under pandas 3's copy-on-write ("ValueError: assignment destination is read-only").
The peer test lets that one call copy; nothing else of nlb-tools is changed. Where nlb-tools is
not installed, the counts are still checked against ``np.histogram`` of the file's spike times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from lifrnn.nwb import NWBLayout, RecordingFileError, read_nwb
from lifrnn_core.spike_trials import NLB_VELOCITY_LAG, SpikeTrialsConfig, spike_trials

N_UNITS = 8
HELDOUT = (2, 6)  # the file's own held-out neurons
N_TRIALS = 24
TRIAL_LENGTH = 1.25  # seconds between trial starts
DURATION = 0.5 + N_TRIALS * TRIAL_LENGTH + 0.5
SPLITS = (["train"] * 4 + ["val", "test"]) * 4
NAN_ONSET, FAILED = 5, 9  # a trial without a detected onset, a failed one (split "none")


def mc_maze_file(path: Path, velocity: bool = True, seed: int = 0) -> Path:
    """A small session in the DANDI MC_Maze layout, as NLB's files have it: units with
    ``spike_times`` (a 30 kHz clock, some spikes exactly on 5 ms edges), ``obs_intervals`` and
    ``heldout``; trials with the task events, ``trial_type`` / ``trial_version``, ``success``,
    ``split``; ``processing/behavior`` with ``hand_pos``, ``cursor_pos`` and (unless not)
    ``hand_vel`` at 1 kHz from time 0."""
    rng = np.random.default_rng(seed)
    nwbfile = NWBFile(
        session_description="MC_Maze-like synthetic session",
        identifier=f"mc-maze-peer-{seed}",
        session_start_time=datetime(2024, 1, 15, tzinfo=UTC),
    )
    nwbfile.add_unit_column(name="heldout", description="held out in NLB's evaluation")
    for unit in range(N_UNITS):
        clock = rng.integers(0, round(DURATION * 30_000), rng.poisson(25 * DURATION)) / 30_000
        edges = rng.integers(0, round(DURATION / 0.005), 20) * 0.005
        nwbfile.add_unit(
            spike_times=np.sort(np.concatenate([clock, edges])),
            obs_intervals=[[0.0, DURATION]],
            heldout=unit in HELDOUT,
        )
    for name in ("target_on_time", "go_cue_time", "move_onset_time"):
        nwbfile.add_trial_column(name=name, description=f"{name} (s)")
    for name in ("trial_type", "trial_version", "success", "split"):
        nwbfile.add_trial_column(name=name, description=name)
    for trial in range(N_TRIALS):
        start = 0.5 + trial * TRIAL_LENGTH
        onset = start + 0.45 + rng.integers(0, 40) / 1000  # a 1 ms clock, off the 5 ms grid
        nwbfile.add_trial(
            start_time=start,
            stop_time=start + TRIAL_LENGTH - 0.02,
            target_on_time=start + 0.05,
            go_cue_time=start + 0.3,
            move_onset_time=np.nan if trial == NAN_ONSET else onset,
            trial_type=trial % 4 + 1,
            trial_version=0,
            success=trial != FAILED,
            split="none" if trial == FAILED else SPLITS[trial],
        )
    behavior = nwbfile.create_processing_module(name="behavior", description="hand kinematics")
    time = np.arange(round(DURATION * 1000)) / 1000
    position = np.stack([np.sin(2 * np.pi * 0.7 * time), np.cos(2 * np.pi * 1.3 * time)], axis=1)
    position += np.cumsum(rng.normal(0, 1e-3, position.shape), axis=0)
    for name, data in (("hand_pos", position), ("cursor_pos", position + 0.01)):
        behavior.add(TimeSeries(name=name, data=data, unit="m", rate=1000.0, starting_time=0.0))
    if velocity:
        hand_vel = np.gradient(position, time, axis=0) + rng.normal(0, 0.05, position.shape)
        behavior.add(
            TimeSeries(name="hand_vel", data=hand_vel, unit="m/s", rate=1000.0, starting_time=0.0)
        )
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path


@pytest.fixture(scope="module")
def nwb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mc_maze_file(tmp_path_factory.mktemp("mc_maze") / "mc_maze.nwb")


CONFIG = SpikeTrialsConfig(behavior_lag=NLB_VELOCITY_LAG)  # NLB's 5 ms, -250..450 ms, 200 ms


def cut(path: Path):
    return spike_trials(read_nwb(path, NWBLayout(), ["move_onset_time"]), CONFIG)


def test_lifrnn_cuts_the_file_as_nlb_tools_does(nwb_path, monkeypatch):
    interface = pytest.importorskip("nlb_tools.nwb_interface")
    make_tensors = pytest.importorskip("nlb_tools.make_tensors")
    dataset = interface.NWBDataset(str(nwb_path))
    nan_to_num = np.nan_to_num
    with monkeypatch.context() as patch:  # see the module docstring: pandas 3's read-only arrays
        patch.setattr(np, "nan_to_num", lambda x, copy=True, **kw: nan_to_num(x, copy=True, **kw))
        dataset.resample(5)
    info = dataset.trial_info
    # nlb-tools fails (KeyError) on a trial of its split without an onset (NLB's files mark them
    # "none"); lifrnn leaves it out as missing_event.
    scored = info.split.isin(["train", "val", "test"]) & info.move_onset_time.notna()
    nlb = make_tensors.make_train_input_tensors(
        dataset,
        "mc_maze",
        trial_split=scored.to_numpy(),
        include_behavior=True,
        include_forward_pred=True,
        save_file=False,
    )
    ours = cut(nwb_path)
    assert ours.trial_index.tolist() == [t for t in range(N_TRIALS) if t not in (5, 9)]
    assert ours.heldout_units.tolist() == list(HELDOUT) and ours.heldout_from_file
    pairs = {
        "train_spikes_heldin": ours.heldin,
        "train_spikes_heldout": ours.heldout,
        "train_spikes_heldin_forward": ours.heldin_forward,
        "train_spikes_heldout_forward": ours.heldout_forward,
    }
    for name, counts in pairs.items():
        assert nlb[name].shape == counts.shape, name
        assert np.array_equal(nlb[name].astype(np.int64), counts), name
    assert ours.heldin.sum() > 1000
    # NLB decodes velocity 100 ms after the spikes, low-pass filtered and resampled by scipy's
    # decimate: the same operation on the same samples.
    np.testing.assert_allclose(ours.behavior, nlb["train_behavior"], rtol=0, atol=1e-9)


def test_counts_are_np_histograms_of_the_files_spike_times(nwb_path):
    ours = cut(nwb_path)
    with NWBHDF5IO(str(nwb_path), mode="r") as io:
        nwbfile = io.read()
        spikes = [np.asarray(nwbfile.units["spike_times"][u]) for u in range(N_UNITS)]
        onset = np.asarray(nwbfile.trials["move_onset_time"].data[:])[ours.trial_index]
        split = np.asarray(nwbfile.trials["split"].data[:])[ours.trial_index]
    window = np.concatenate([ours.heldin, ours.heldin_forward], axis=1)
    window_out = np.concatenate([ours.heldout, ours.heldout_forward], axis=1)
    for row, event in enumerate(onset):
        # The window opens at the first 5 ms edge from time 0 at or after onset - 250 ms.
        first = np.ceil(np.round((event - 0.25) * 200, 6))
        edges = np.round((first + np.arange(182)) * 0.005, 9)  # np.histogram closes its last bin
        for column, unit in enumerate(ours.heldin_units):
            assert np.array_equal(window[row, :, column], np.histogram(spikes[unit], edges)[0][:-1])
        for column, unit in enumerate(ours.heldout_units):
            expected = np.histogram(spikes[unit], edges)[0][:-1]
            assert np.array_equal(window_out[row, :, column], expected)
    assert ours.split.tolist() == [str(s) for s in split] and ours.split_rule == "file"


def test_hand_velocity_is_the_derivative_of_hand_pos_when_the_file_has_no_hand_vel(tmp_path):
    path = mc_maze_file(tmp_path / "no_vel.nwb", velocity=False)
    recording = read_nwb(path, NWBLayout(), ["move_onset_time"])
    with NWBHDF5IO(str(path), mode="r") as io:
        position = np.asarray(io.read().processing["behavior"]["hand_pos"].data[:])
    assert recording.behavior is not None and recording.behavior_times is not None
    assert recording.behavior_times[1] - recording.behavior_times[0] == pytest.approx(1e-3)
    central = (position[2:] - position[:-2]) / 2e-3
    np.testing.assert_allclose(recording.behavior[1:-1], central, rtol=0, atol=1e-9)


def test_a_file_without_the_alignment_event_is_refused_naming_it(tmp_path):
    nwbfile = NWBFile(
        session_description="no onsets",
        identifier="no-onsets",
        session_start_time=datetime(2024, 1, 15, tzinfo=UTC),
    )
    for name in ("trial_type", "trial_version"):
        nwbfile.add_trial_column(name=name, description=name)
    nwbfile.add_trial(start_time=0.0, stop_time=1.0, trial_type=1, trial_version=0)
    nwbfile.add_unit(spike_times=[0.1, 0.2])
    with NWBHDF5IO(str(tmp_path / "no_onsets.nwb"), mode="w") as io:
        io.write(nwbfile)
    with pytest.raises(RecordingFileError, match="'move_onset_time' missing"):
        read_nwb(tmp_path / "no_onsets.nwb", NWBLayout(), ["move_onset_time"])
