"""NWB recordings: a synthetic session written in the MC_Maze layout reads back exactly, passes
nwbinspector, and files that lack something or point outside themselves are refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from pynwb import NWBHDF5IO, NWBFile

from lifrnn.headers import HeaderError, TooLargeError
from lifrnn.nwb import NWBLayout, RecordingFileError, check_layout, inspect_nwb, read_nwb, write_nwb
from lifrnn.store.uploads import UploadReceiver, receive_chunks
from lifrnn_core.dynamics import background_input, spontaneous_state
from lifrnn_core.soc import build_soc
from lifrnn_core.soc_parameters import SOCParameters
from lifrnn_core.synthetic_recordings import SyntheticRecording, synthesize_recording

EVENTS = ["move_onset_time", "go_cue_time", "target_on_time"]


@pytest.fixture(scope="module")
def synthetic() -> SyntheticRecording:
    """A small session; x* and C drawn at random (no fit: the file does not care)."""
    params = SOCParameters.for_method("kao2021", n=40)
    W = torch.from_numpy(build_soc(params, seed=0).weights)
    generator = torch.Generator().manual_seed(0)
    x_sp = spontaneous_state(40, generator)
    x_star = x_sp + 0.2 * torch.randn(8, 40, generator=generator, dtype=torch.float64)
    C = 0.1 * torch.randn(2, params.n_excitatory, generator=generator, dtype=torch.float64)
    return synthesize_recording(
        W,
        params.n_excitatory,
        x_sp=x_sp,
        h=background_input(W, x_sp),
        x_star=x_star,
        C=C,
        trials_per_condition=20,
        neurons=30,
        seed=0,
    )


@pytest.fixture(scope="module")
def nwb_file(synthetic: SyntheticRecording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_nwb(tmp_path_factory.mktemp("nwb") / "session.nwb", synthetic)


def bare_nwb(
    path: Path, with_trials: bool = False, with_units: bool = False, with_spikes: bool = False
) -> Path:
    """An NWB file with only what is asked for (units without spike times unless asked)."""
    nwbfile = NWBFile(
        session_description="incomplete",
        identifier="incomplete",
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    if with_trials:
        nwbfile.add_trial(start_time=0.0, stop_time=1.0)
    if with_spikes:
        nwbfile.add_unit(spike_times=[0.1, 0.2])
    elif with_units:
        nwbfile.add_unit_column(name="quality", description="sorting quality")
        nwbfile.add_unit(quality=1.0)
    with NWBHDF5IO(str(path), mode="w") as io:
        io.write(nwbfile)
    return path


def test_a_synthetic_session_opens_with_pynwb_in_the_mc_maze_layout(nwb_file, synthetic):
    with NWBHDF5IO(str(nwb_file), mode="r") as io:
        nwbfile = io.read()
        assert len(nwbfile.units) == 30
        assert len(nwbfile.trials) == len(synthetic.recording.trials)
        assert {"move_onset_time", "trial_type", "trial_version", "success", "split"} <= set(
            nwbfile.trials.colnames
        )
        velocity = nwbfile.processing["behavior"]["hand_vel"]
        assert velocity.data.shape == synthetic.recording.behavior.shape
        assert nwbfile.subject.species == "Macaca mulatta"


def test_a_synthetic_session_passes_nwbinspector(nwb_file):
    inspector = pytest.importorskip("nwbinspector")
    messages = list(inspector.inspect_nwbfile(nwbfile_path=nwb_file))
    serious = {inspector.Importance.CRITICAL, inspector.Importance.BEST_PRACTICE_VIOLATION}
    assert [m.message for m in messages if m.importance in serious] == []


def test_read_nwb_gives_back_what_was_written(nwb_file, synthetic):
    written = synthetic.recording
    read = read_nwb(nwb_file, NWBLayout(), EVENTS)
    assert read.n_units == written.n_units
    assert np.array_equal(read.unit_ids, np.arange(30))
    for got, expected in zip(read.spike_times, written.spike_times, strict=True):
        assert got.dtype == np.float64 and np.array_equal(got, expected)
    assert sum(len(s) for s in read.spike_times) == sum(len(s) for s in written.spike_times)
    assert np.array_equal(read.trials.start_time, written.trials.start_time)
    assert np.array_equal(read.trials.stop_time, written.trials.stop_time)
    for event in EVENTS:
        assert np.array_equal(
            read.trials.events[event], written.trials.events[event], equal_nan=True
        )
    assert np.isnan(read.trials.events["move_onset_time"]).sum() == 2  # NaN kept (160 trials)
    assert list(read.trials.condition) == list(written.trials.condition)
    assert read.trials.condition[0].endswith("/0")
    assert np.array_equal(read.trials.success, written.trials.success)
    assert list(read.trials.split) == list(written.trials.split)
    assert np.array_equal(read.behavior, written.behavior)
    assert np.array_equal(read.behavior_times, written.behavior_times)


def test_one_condition_column_labels_without_a_slash(nwb_file):
    read = read_nwb(nwb_file, NWBLayout(conditions=("trial_type",)), ["move_onset_time"])
    assert set(read.trials.condition) == {str(c) for c in range(1, 9)}


def test_a_file_without_the_optional_columns_reads_with_defaults(tmp_path):
    nwbfile_path = tmp_path / "minimal.nwb"
    nwbfile = NWBFile(
        session_description="minimal",
        identifier="minimal",
        session_start_time=datetime(2024, 1, 1, tzinfo=UTC),
    )
    nwbfile.add_trial_column(name="trial_type", description="condition")
    nwbfile.add_trial(start_time=0.0, stop_time=1.0, trial_type=3)
    nwbfile.add_trial(start_time=1.0, stop_time=2.0, trial_type=4)
    nwbfile.add_unit(spike_times=[0.5, 0.2, 1.5])  # unsorted on purpose
    with NWBHDF5IO(str(nwbfile_path), mode="w") as io:
        io.write(nwbfile)
    read = read_nwb(nwbfile_path, NWBLayout(conditions=("trial_type",)), ["start_time"])
    assert np.array_equal(read.spike_times[0], [0.2, 0.5, 1.5])
    assert read.trials.success.tolist() == [True, True] and read.trials.split is None
    assert read.behavior is None and read.behavior_times is None


def test_inspect_nwb_summarises_the_file(nwb_file, synthetic):
    summary = inspect_nwb(nwb_file)
    written = synthetic.recording
    assert summary["format"] == "nwb"
    assert summary["units"] == 30
    assert summary["spikes"] == sum(len(s) for s in written.spike_times)
    assert summary["trials"] == len(written.trials)
    assert "move_onset_time" in summary["trial_columns"]
    assert summary["unit_tables"]["units"]["columns"] == ["heldout", "obs_intervals", "spike_times"]
    assert summary["behavior_series"]["behavior/hand_vel"] == [len(written.behavior), 2]
    assert summary["duration_s"] == pytest.approx(written.trials.stop_time[-1])


def test_inspect_nwb_lists_everything_missing_at_once(tmp_path):
    with pytest.raises(RecordingFileError, match="missing: units table; trials table"):
        inspect_nwb(bare_nwb(tmp_path / "empty.nwb"))
    with pytest.raises(RecordingFileError, match=r"missing: trials table$"):
        inspect_nwb(bare_nwb(tmp_path / "no_trials.nwb", with_spikes=True))
    no_spikes = bare_nwb(tmp_path / "no_spikes.nwb", with_units=True)
    with pytest.raises(
        RecordingFileError, match=r"missing: spike_times column of the units table; trials table$"
    ):
        inspect_nwb(no_spikes)


def test_a_file_with_an_external_link_is_refused(nwb_file, tmp_path):
    linked = tmp_path / "linked.nwb"
    linked.write_bytes(nwb_file.read_bytes())
    with h5py.File(linked, "a") as handle:
        handle["acquisition/elsewhere"] = h5py.ExternalLink("/etc/passwd", "/")
    with pytest.raises(RecordingFileError, match="external link /acquisition/elsewhere"):
        inspect_nwb(linked)
    with pytest.raises(RecordingFileError, match="outside itself"):
        read_nwb(linked, NWBLayout(), EVENTS)


def test_external_storage_and_virtual_datasets_are_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.arange(4, dtype="<f8").tobytes())
    stored = bare_nwb(tmp_path / "external.nwb")
    with h5py.File(stored, "a") as handle:
        handle.create_dataset("stolen", shape=(4,), dtype="<f8", external=[(str(outside), 0, 32)])
        layout = h5py.VirtualLayout(shape=(4,), dtype="<f8")
        layout[:] = h5py.VirtualSource(str(outside), "data", shape=(4,))
        handle.create_virtual_dataset("mirror", layout)
    with pytest.raises(RecordingFileError) as refused:
        inspect_nwb(stored)
    assert "dataset /stolen stored in external files" in str(refused.value)
    assert "virtual dataset /mirror" in str(refused.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"PK\x03\x04 a zip file, not HDF5", "not an NWB file: an NWB file is HDF5"),
        (b"\x89HDF\r\n\x1a\n" + bytes(100), "not a readable HDF5 file"),
    ],
)
def test_files_that_are_not_hdf5_are_refused(tmp_path, payload, message):
    path = tmp_path / "fake.nwb"
    path.write_bytes(payload)
    with pytest.raises(RecordingFileError, match=message):
        inspect_nwb(path)


def test_an_hdf5_file_that_is_not_nwb_is_refused(tmp_path):
    path = tmp_path / "plain.nwb"
    with h5py.File(path, "w") as handle:
        handle["data"] = np.arange(3.0)
    with pytest.raises(RecordingFileError, match="not an NWB file pynwb can read"):
        inspect_nwb(path)


def test_check_layout_names_a_misspelt_event_column(nwb_file):
    summary = inspect_nwb(nwb_file)
    assert check_layout(summary, NWBLayout(), EVENTS) == []
    [problem] = check_layout(summary, NWBLayout(), ["move_onset_tme"])
    assert "'move_onset_tme' missing" in problem and "move_onset_time" in problem
    with pytest.raises(RecordingFileError, match="move_onset_tme"):
        read_nwb(nwb_file, NWBLayout(), ["move_onset_tme"])


def test_check_layout_names_every_problem(nwb_file):
    layout = NWBLayout(
        units_table="ecephys/units",
        conditions=("direction",),
        success="completed",
        velocity="cursor_vel",
    )
    problems = check_layout(inspect_nwb(nwb_file), layout, ["move_onset_time"])
    assert len(problems) == 3
    assert "units table 'ecephys/units' is missing" in problems[0]
    assert "'direction', 'completed' missing" in problems[1]
    assert "behaviour series 'behavior/cursor_vel' is missing" in problems[2]
    assert check_layout({"tensors": {}}, NWBLayout(), []) == [
        "the file is not an NWB recording (upload a .nwb file)"
    ]


def chunks(payload: bytes, size: int = 1 << 16) -> list[bytes]:
    return [payload[i : i + size] for i in range(0, len(payload), size)]


def test_a_recording_is_received_with_its_summary_as_header(nwb_file, tmp_path):
    payload = nwb_file.read_bytes()
    received = receive_chunks(
        chunks(payload), "session.nwb", 1 << 20, tmp_path, max_recording_bytes=len(payload)
    )
    assert received.size == len(payload) and received.header.format == "nwb"
    stored = received.header.as_json()
    assert stored == inspect_nwb(nwb_file) and stored["format"] == "nwb"


def test_a_recording_declaring_more_than_the_limit_is_refused_from_its_first_bytes(
    nwb_file, tmp_path
):
    payload = nwb_file.read_bytes()
    receiver = UploadReceiver(
        "session.nwb", 1 << 20, tmp_path, max_recording_bytes=len(payload) - 1
    )
    with pytest.raises(TooLargeError, match=f"recordings may have at most {len(payload) - 1}"):
        receiver.feed(payload[:64])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda p: p[:-10], "its header declares"),
        (lambda p: p + b"tail", "longer than its header declares"),
        (lambda p: b"GIF89a" + p[6:], "starts with the HDF5 signature"),
    ],
)
def test_truncated_or_padded_or_foreign_recordings_are_refused(nwb_file, tmp_path, cut, message):
    with pytest.raises(HeaderError, match=message):
        receive_chunks(chunks(cut(nwb_file.read_bytes())), "session.nwb", 1 << 30, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_incomplete_recording_is_refused_naming_what_is_missing(tmp_path):
    payload = bare_nwb(tmp_path / "empty.nwb").read_bytes()
    with pytest.raises(
        HeaderError, match=r"empty\.nwb is not a recording .*missing: units table; trials table"
    ):
        receive_chunks([payload], "empty.nwb", 1 << 30, tmp_path / "uploads")
    assert list((tmp_path / "uploads").iterdir()) == []
